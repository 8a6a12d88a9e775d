"""The InfluxDB price store (v1-compatible HTTP API: line protocol and InfluxQL).

Works on InfluxDB 1.x, 2.x (token auth, DBRP-mapped buckets) and InfluxDB 3 Core.
"""

from infra.influx.errors import PriceStoreError, PriceStoreUnavailable
from infra.influx.lineprotocol import (
    candle_line,
    escape_field_key,
    escape_measurement,
    escape_string_field,
    escape_tag,
    indicator_line,
    line,
    quote_identifier,
    quote_literal,
    read_decimal,
)
from infra.influx.store import InfluxPriceStore, from_settings

__all__ = [
    "InfluxPriceStore",
    "PriceStoreError",
    "PriceStoreUnavailable",
    "candle_line",
    "escape_field_key",
    "escape_measurement",
    "escape_string_field",
    "escape_tag",
    "from_settings",
    "indicator_line",
    "line",
    "quote_identifier",
    "quote_literal",
    "read_decimal",
]
