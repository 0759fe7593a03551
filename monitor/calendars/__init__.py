"""Practice calendars (CSV and iCalendar) into sessions: pure parsing (``imports``) and the
child process that runs it with bounded CPU and time (``worker``)."""
