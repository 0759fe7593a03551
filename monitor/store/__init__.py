"""The monitor's store: the ``Store`` interface and its embedded SQLite implementation
(``core``: connection, transactions, schema), with one module per area (a mixin of
``core.SQLiteStore`` each)."""
