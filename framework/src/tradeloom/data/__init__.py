"""Data sources: the contract, file sources, quality checks and bundled datasets."""

from tradeloom.data.base import (
    BAR_COLUMNS,
    ChunkedMarket,
    DataSource,
    Fingerprint,
    MarketData,
    QualityReport,
)
from tradeloom.data.datasets import DatasetInfo, DatasetSource, list_datasets
from tradeloom.data.files import CsvSource, ParquetSource
from tradeloom.data.quality import validate_bars

__all__ = [
    "BAR_COLUMNS",
    "ChunkedMarket",
    "CsvSource",
    "DataSource",
    "DatasetInfo",
    "DatasetSource",
    "Fingerprint",
    "MarketData",
    "ParquetSource",
    "QualityReport",
    "list_datasets",
    "validate_bars",
]
