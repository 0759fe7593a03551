"""The monitor's store: the ``Store`` interface (``protocols``, one protocol per area), the SQL
both back ends run (``core.StoreQueries``, built from one mixin per area module), the embedded
SQLite back end (``core.SQLiteStore``) and PostgreSQL (``postgres.PostgresStore``, psycopg
imported only there); what differs between the two dialects is in ``dialect``."""
