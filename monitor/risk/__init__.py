"""Session risk: the pure engine (``engine``) and its words (``words``), the live session's
state machine (``live``), and the service that runs both in the monitor (``service``)."""
