"""Batch upload of a campaign's numbers from CSV or XLSX: see :mod:`producer.upload.ingest`.

Modules, in the order a row meets them: ``sniff`` (format, encoding,
delimiter, phone column; pure), ``readers`` (row streaming), ``validate``
(one row's verdict; pure), ``batches`` (COPY-ready chunks; pure), ``store``
(Postgres), ``report`` (the rejects CSV), ``ingest`` (the order of work),
``single`` (one number at a time).
"""

from producer.upload.ingest import UploadSummary, ingest_bytes, ingest_file

__all__ = ["UploadSummary", "ingest_bytes", "ingest_file"]
