-- Question: when does the traffic that promotion would break happen — all day, in bursts, or once a night?
-- One row per hour that has would-break traffic, in time order; the HTML report draws it as a timeline. A flow
-- seen only in a short window deserves a longer look at the logs before promoting.
--
-- Counting: each logging window is placed in the hour it starts in. A connection reported by both ends counts once
-- (the larger of the two reporters' totals for each client→server workload pair in that hour), and copies of a
-- split record count once. A record without a connection count (a Whisker download) counts as one flow.
--
-- Columns:
--   hour       start of the hour (UTC)
--   flows      connections that would be denied, summed over the logging windows starting in that hour
--   bytes      bytes of those connections, both directions
--   pairs      distinct client→server workload pairs (with port and protocol) active in that hour
-- Chart: timeline
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
        date_trunc('hour', start_time) AS hour,
        CASE WHEN reporter LIKE 'src%' THEN 'src' WHEN reporter LIKE 'dst%' THEN 'dst' ELSE 'fwd' END AS side,
        source_namespace,
        CASE WHEN source_type = 'wep' OR (source_type IS NULL AND source_namespace IS NOT NULL)
            THEN regexp_replace(COALESCE(source_name_aggr, source_name), '(-[bcdfghjklmnpqrstvwxz2456789]{5,10})?-[*]$|-[0-9]+$', '')
            ELSE COALESCE(source_name_aggr, source_name, source_ip) END AS source_workload,
        dest_namespace,
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
        hour, source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, side,
        sum(flows) AS flows, sum(bytes) AS bytes
    FROM named
    GROUP BY hour, source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, side
),
pairs AS (
    SELECT
        hour, source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto,
        max(flows) AS flows, max(bytes) AS bytes
    FROM per_reporter
    GROUP BY hour, source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto
)
SELECT hour, sum(flows) AS flows, sum(bytes) AS bytes, count(*) AS pairs
FROM pairs
GROUP BY hour
ORDER BY hour
