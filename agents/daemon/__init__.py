"""The agent daemon (``sessionready agent``): scheduler, samplers, spool and forwarder. See docs/agent.md."""
