-- Question: which services would lose traffic that is allowed today if every staged policy were promoted?
-- One row per destination (namespace, workload, port, protocol), ranked by flows, then bytes.
--
-- Counting: a connection reported by both its source and its destination counts once. Each reporter's totals for a
-- client→server pair are summed separately and the larger is kept, because the two reports describe the same
-- connections (flowlog-formats §5.9). Rows of one file that repeat a record's window, endpoints and counters are
-- copies of a split record (§1.5) and count once. A record without a connection count (a Whisker download) counts
-- as one flow.
--
-- Columns:
--   rank              1 = the destination that would lose the most flows
--   dest_namespace    namespace of the server; NULL for host endpoints, global network sets and external networks
--   dest_workload     the server: pod name prefix without the ReplicaSet hash or StatefulSet ordinal (`backend`),
--                     host endpoint or node, network set, or `pub` / `pvt` for addresses Calico does not own
--   dest_labels       the server's labels as logged (for aggregated rows: the labels its pods share), which the
--                     staged policy's selector matched; when its pods were logged with different labels (a
--                     rollout), the set that sorts last
--   dest_port         destination port after DNAT; NULL when not logged
--   proto             L4 protocol (tcp, udp, …)
--   flows             connections that would be denied, summed over logging windows (`num_flows`)
--   bytes             bytes of those connections, both directions
--   sources           distinct client workloads that would lose access
--   top_source        the client that would lose the most flows, as namespace/workload
--   first_seen        start of the first logging window with such traffic
--   last_seen         end of the last one
--   denied_by_tier    tier of the policy that would deny most of these flows
--   denied_by_policy  that policy as written (`name` or `namespace/name`); for an end-of-tier deny, the policy
--                     that triggered the tier's default action
--   denied_by_rule    rule index in that policy; -1 = no rule matched (end of tier)
--   denied_by_staged  true when that policy is one of the staged objects being promoted
-- Parameter: $top — keep the first N rows (NULL keeps all).
-- Show: rank, dest_namespace, dest_workload, dest_port, proto, flows, bytes, top_source, denied_by_policy, denied_by_rule
WITH
-- One pass over the findings: `breaking` and `labelled` both read this.
logged AS (
    SELECT
        reporter, host, source_file, start_time, end_time,
        source_type, source_namespace, source_name, source_name_aggr, source_ip, source_port,
        dest_type, dest_namespace, dest_name, dest_name_aggr, dest_ip, dest_port, proto, dest_labels,
        num_flows, bytes_in, bytes_out, packets_in, packets_out,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged
    FROM findings
    WHERE would_break
),
breaking AS (
    -- Labels stay out: maps cannot be compared, so they cannot take part in DISTINCT.
    SELECT DISTINCT
        reporter, host, source_file, start_time, end_time,
        source_type, source_namespace, source_name, source_name_aggr, source_ip, source_port,
        dest_type, dest_namespace, dest_name, dest_name_aggr, dest_ip, dest_port, proto,
        num_flows, bytes_in, bytes_out, packets_in, packets_out,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged
    FROM logged
),
labelled AS (
    -- Pods of one workload logged with different labels (a rollout): the label set that sorts last, so every
    -- engine shows the same one.
    SELECT dest_namespace, dest_workload, dest_port, proto,
        max_by(dest_labels, array_to_string(list_sort(list_transform(map_entries(dest_labels), lambda e: e.key || '=' || COALESCE(e.value, ''))), ',')) AS dest_labels
    FROM (
        SELECT
            dest_namespace,
            CASE WHEN dest_type = 'wep' OR (dest_type IS NULL AND dest_namespace IS NOT NULL)
            THEN regexp_replace(COALESCE(dest_name_aggr, dest_name), '(-[bcdfghjklmnpqrstvwxz2456789]{5,10})?-[*]$|-[0-9]+$', '')
            ELSE COALESCE(dest_name_aggr, dest_name, dest_ip) END AS dest_workload,
            dest_port, proto, dest_labels
        FROM logged
    ) AS r
    GROUP BY dest_namespace, dest_workload, dest_port, proto
),
named AS (
    SELECT
        CASE WHEN reporter LIKE 'src%' THEN 'src' WHEN reporter LIKE 'dst%' THEN 'dst' ELSE 'fwd' END AS side,
        source_namespace,
        CASE WHEN source_type = 'wep' OR (source_type IS NULL AND source_namespace IS NOT NULL)
            THEN regexp_replace(COALESCE(source_name_aggr, source_name), '(-[bcdfghjklmnpqrstvwxz2456789]{5,10})?-[*]$|-[0-9]+$', '')
            ELSE COALESCE(source_name_aggr, source_name, source_ip) END AS source_workload,
        dest_namespace,
        CASE WHEN dest_type = 'wep' OR (dest_type IS NULL AND dest_namespace IS NOT NULL)
            THEN regexp_replace(COALESCE(dest_name_aggr, dest_name), '(-[bcdfghjklmnpqrstvwxz2456789]{5,10})?-[*]$|-[0-9]+$', '')
            ELSE COALESCE(dest_name_aggr, dest_name, dest_ip) END AS dest_workload,
        dest_port, proto, start_time, end_time,
        COALESCE(num_flows, 1) AS flows,
        COALESCE(bytes_in, 0) + COALESCE(bytes_out, 0) AS bytes,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged
    FROM breaking
),
per_reporter AS (
    SELECT
        dest_namespace, dest_workload, dest_port, proto, source_namespace, source_workload, side,
        sum(flows) AS flows, sum(bytes) AS bytes, min(start_time) AS first_seen, max(end_time) AS last_seen
    FROM named
    GROUP BY dest_namespace, dest_workload, dest_port, proto, source_namespace, source_workload, side
),
pairs AS (
    SELECT
        dest_namespace, dest_workload, dest_port, proto, source_namespace, source_workload,
        max(flows) AS flows, max(bytes) AS bytes, min(first_seen) AS first_seen, max(last_seen) AS last_seen
    FROM per_reporter
    GROUP BY dest_namespace, dest_workload, dest_port, proto, source_namespace, source_workload
),
pairs_ranked AS (
    SELECT
        pairs.*,
        row_number() OVER (
            PARTITION BY dest_namespace, dest_workload, dest_port, proto
            ORDER BY flows DESC, bytes DESC, source_namespace, source_workload
        ) AS source_rank
    FROM pairs
),
destinations AS (
    SELECT
        dest_namespace, dest_workload, dest_port, proto,
        sum(flows) AS flows,
        sum(bytes) AS bytes,
        count(*) AS sources,
        max(CASE WHEN source_rank = 1
            THEN COALESCE(source_namespace || '/', '') || source_workload END) AS top_source,
        min(first_seen) AS first_seen,
        max(last_seen) AS last_seen
    FROM pairs_ranked
    GROUP BY dest_namespace, dest_workload, dest_port, proto
),
deciders AS (
    SELECT
        dest_namespace, dest_workload, dest_port, proto,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged,
        row_number() OVER (
            PARTITION BY dest_namespace, dest_workload, dest_port, proto
            ORDER BY sum(flows) DESC, sum(bytes) DESC, proposed_policy, proposed_rule
        ) AS decider_rank
    FROM named
    GROUP BY dest_namespace, dest_workload, dest_port, proto,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged
),
ranked AS (
    SELECT
        row_number() OVER (
            ORDER BY d.flows DESC, d.bytes DESC, d.dest_namespace, d.dest_workload, d.dest_port, d.proto
        ) AS rank,
        d.dest_namespace, d.dest_workload, l.dest_labels, d.dest_port, d.proto,
        d.flows, d.bytes, d.sources, d.top_source, d.first_seen, d.last_seen,
        p.proposed_tier AS denied_by_tier,
        p.proposed_policy AS denied_by_policy,
        p.proposed_rule AS denied_by_rule,
        p.proposed_staged AS denied_by_staged
    FROM destinations AS d
    JOIN deciders AS p
        ON p.decider_rank = 1
        AND p.dest_namespace IS NOT DISTINCT FROM d.dest_namespace
        AND p.dest_workload IS NOT DISTINCT FROM d.dest_workload
        AND p.dest_port IS NOT DISTINCT FROM d.dest_port
        AND p.proto IS NOT DISTINCT FROM d.proto
    JOIN labelled AS l
        ON l.dest_namespace IS NOT DISTINCT FROM d.dest_namespace
        AND l.dest_workload IS NOT DISTINCT FROM d.dest_workload
        AND l.dest_port IS NOT DISTINCT FROM d.dest_port
        AND l.proto IS NOT DISTINCT FROM d.proto
)
SELECT *
FROM ranked
WHERE $top IS NULL OR rank <= $top
ORDER BY rank
