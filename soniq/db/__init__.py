"""Everything that talks SQL: connections, migrations, and one store per table family."""
