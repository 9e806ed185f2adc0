-- Question: between which namespaces would promotion cut traffic that flows today?
-- One row per (client namespace, server namespace) pair with would-break traffic, ranked by flows, then bytes;
-- the HTML report draws it as a namespace-to-namespace matrix.
--
-- Counting: a connection reported by both ends counts once (the larger of the two reporters' totals for each
-- client→server workload pair), and copies of a split record count once. A record without a connection count (a
-- Whisker download) counts as one flow.
--
-- Columns:
--   rank              1 = the namespace pair that would lose the most flows
--   source_namespace  client namespace; `(none)` for host endpoints, global network sets and external networks
--   dest_namespace    server namespace; `(none)` likewise
--   flows             connections that would be denied, summed over logging windows (`num_flows`)
--   bytes             bytes of those connections, both directions
--   pairs             distinct client→server workload pairs (with port and protocol) behind the figure
-- Parameter: $top — keep the first N rows (NULL keeps all).
-- Chart: matrix
WITH
breaking AS (
    SELECT DISTINCT
        reporter, host, source_file, start_time, end_time,
        source_type, source_namespace, source_name, source_name_aggr, source_ip, source_port,
        dest_type, dest_namespace, dest_name, dest_name_aggr, dest_ip, dest_port, proto,
        num_flows, bytes_in, bytes_out, packets_in, packets_out
    FROM findings
    WHERE would_break
),
named AS (
    SELECT
        CASE WHEN reporter LIKE 'src%' THEN 'src' WHEN reporter LIKE 'dst%' THEN 'dst' ELSE 'fwd' END AS side,
        COALESCE(source_namespace, '(none)') AS source_namespace,
        CASE WHEN source_type = 'wep' OR (source_type IS NULL AND source_namespace IS NOT NULL)
            THEN regexp_replace(COALESCE(source_name_aggr, source_name), '(-[bcdfghjklmnpqrstvwxz2456789]{5,10})?-[*]$|-[0-9]+$', '')
            ELSE COALESCE(source_name_aggr, source_name, source_ip) END AS source_workload,
        COALESCE(dest_namespace, '(none)') AS dest_namespace,
        CASE WHEN dest_type = 'wep' OR (dest_type IS NULL AND dest_namespace IS NOT NULL)
            THEN regexp_replace(COALESCE(dest_name_aggr, dest_name), '(-[bcdfghjklmnpqrstvwxz2456789]{5,10})?-[*]$|-[0-9]+$', '')
            ELSE COALESCE(dest_name_aggr, dest_name, dest_ip) END AS dest_workload,
        dest_port, proto,
        COALESCE(num_flows, 1) AS flows,
        COALESCE(bytes_in, 0) + COALESCE(bytes_out, 0) AS bytes
    FROM breaking
),
per_reporter AS (
    SELECT
        source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, side,
        sum(flows) AS flows, sum(bytes) AS bytes
    FROM named
    GROUP BY source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, side
),
pairs AS (
    SELECT
        source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto,
        max(flows) AS flows, max(bytes) AS bytes
    FROM per_reporter
    GROUP BY source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto
),
ranked AS (
    SELECT
        row_number() OVER (
            ORDER BY sum(flows) DESC, sum(bytes) DESC, source_namespace, dest_namespace
        ) AS rank,
        source_namespace, dest_namespace,
        sum(flows) AS flows, sum(bytes) AS bytes, count(*) AS pairs
    FROM pairs
    GROUP BY source_namespace, dest_namespace
)
SELECT *
FROM ranked
WHERE $top IS NULL OR rank <= $top
ORDER BY rank
