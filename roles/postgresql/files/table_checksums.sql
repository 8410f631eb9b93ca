-- Every table of the database (outside the system schemas): its row count and an md5 of its
-- rows in text order. Read-only; one scan per table.
SELECT format('%I.%I', table_schema, table_name) AS name,
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', table_schema, table_name),
                                            false, true, '')))[1]::text::bigint AS rows,
       (xpath('/row/m/text()', query_to_xml(format(
            'SELECT md5(coalesce(string_agg(r::text, chr(10) ORDER BY r::text), '''')) AS m FROM %I.%I r',
            table_schema, table_name), false, true, '')))[1]::text AS md5
FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1
