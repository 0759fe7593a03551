"""sessionready core: the wire schema, the quality model and the command line, shared by agents and monitor."""
__version__ = "0.1.0"
