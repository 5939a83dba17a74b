"""The on-disk dataset, one module per concern (``xcomlog.dataset`` is the public face).

- ``table_schemas``: the tables' Arrow schemas and the files' metadata keys;
- ``layout``: folders and file names (table, ``site=``, ``date=``, journal);
- ``datapoint_labels``: names and units of the datapoints, in their table and in each file;
- ``parquet_files``: atomic Parquet writes with each table's encodings and row order;
- ``journal``: the crash journal, its compaction into Parquet and its recovery;
- ``day_merge``: a finished day's files merged into one;
- ``dataset_writer``: ``DatasetWriter``, the thread that does all of the above for the logger.
"""
