"""Adapters to the outside world: RabbitMQ bus, Postgres, InfluxDB, exchanges, settings, logging."""
