"""Published schemas of the outputs: Avro (alerts, dead letters), the Sentinel custom table and its DCR, BigQuery.

Data files only; `transforms.write.files.schema_path(name)` finds them in a checkout and in an installed package.
"""
