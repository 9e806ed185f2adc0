-- Question: which clients would lose access to something they use today if every staged policy were promoted?
-- The would-break report seen from the client's side: one row per source (namespace, workload), ranked by flows,
-- then bytes.
--
-- Counting: as in would_break.sql, a connection reported by both ends counts once (the larger of the two reporters'
-- totals for each client→server pair), and copies of a split record count once. A record without a connection count
-- (a Whisker download) counts as one flow.
--
-- Columns:
--   rank              1 = the client that would lose the most flows
--   source_namespace  namespace of the client; NULL for host endpoints, global network sets and external networks
--   source_workload   the client: pod name prefix without the ReplicaSet hash or StatefulSet ordinal, host endpoint
--                     or node, network set, or `pub` / `pvt`
--   flows             its connections that would be denied, summed over logging windows (`num_flows`)
--   bytes             bytes of those connections, both directions
--   destinations      distinct services (namespace, workload, port, protocol) it would lose
--   top_destination   the service it would lose the most flows to, as namespace/workload:port/protocol
--   first_seen        start of the first logging window with such traffic
--   last_seen         end of the last one
--   denied_by_tier    tier of the policy that would deny most of these flows
--   denied_by_policy  that policy as written (`name` or `namespace/name`); for an end-of-tier deny, the policy
--                     that triggered the tier's default action
--   denied_by_rule    rule index in that policy; -1 = no rule matched (end of tier)
--   denied_by_staged  true when that policy is one of the staged objects being promoted
-- Parameter: $top — keep the first N rows (NULL keeps all).
-- Show: rank, source_namespace, source_workload, flows, bytes, destinations, top_destination, denied_by_policy, denied_by_rule
WITH
breaking AS (
    SELECT DISTINCT
        reporter, host, source_file, start_time, end_time,
        source_type, source_namespace, source_name, source_name_aggr, source_ip, source_port,
        dest_type, dest_namespace, dest_name, dest_name_aggr, dest_ip, dest_port, proto,
        num_flows, bytes_in, bytes_out, packets_in, packets_out,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged
    FROM findings
    WHERE would_break
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
        source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, side,
        sum(flows) AS flows, sum(bytes) AS bytes, min(start_time) AS first_seen, max(end_time) AS last_seen
    FROM named
    GROUP BY source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, side
),
pairs AS (
    SELECT
        source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto,
        max(flows) AS flows, max(bytes) AS bytes, min(first_seen) AS first_seen, max(last_seen) AS last_seen
    FROM per_reporter
    GROUP BY source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto
),
pairs_ranked AS (
    SELECT
        pairs.*,
        row_number() OVER (
            PARTITION BY source_namespace, source_workload
            ORDER BY flows DESC, bytes DESC, dest_namespace, dest_workload, dest_port, proto
        ) AS destination_rank
    FROM pairs
),
sources AS (
    SELECT
        source_namespace, source_workload,
        sum(flows) AS flows,
        sum(bytes) AS bytes,
        count(*) AS destinations,
        max(CASE WHEN destination_rank = 1
            THEN COALESCE(dest_namespace || '/', '') || dest_workload
                || COALESCE(':' || CAST(dest_port AS VARCHAR), '') || '/' || proto END) AS top_destination,
        min(first_seen) AS first_seen,
        max(last_seen) AS last_seen
    FROM pairs_ranked
    GROUP BY source_namespace, source_workload
),
deciders AS (
    SELECT
        source_namespace, source_workload,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged,
        row_number() OVER (
            PARTITION BY source_namespace, source_workload
            ORDER BY sum(flows) DESC, sum(bytes) DESC, proposed_policy, proposed_rule
        ) AS decider_rank
    FROM named
    GROUP BY source_namespace, source_workload, proposed_tier, proposed_policy, proposed_rule, proposed_staged
),
ranked AS (
    SELECT
        row_number() OVER (
            ORDER BY s.flows DESC, s.bytes DESC, s.source_namespace, s.source_workload
        ) AS rank,
        s.source_namespace, s.source_workload,
        s.flows, s.bytes, s.destinations, s.top_destination, s.first_seen, s.last_seen,
        p.proposed_tier AS denied_by_tier,
        p.proposed_policy AS denied_by_policy,
        p.proposed_rule AS denied_by_rule,
        p.proposed_staged AS denied_by_staged
    FROM sources AS s
    JOIN deciders AS p
        ON p.decider_rank = 1
        AND p.source_namespace IS NOT DISTINCT FROM s.source_namespace
        AND p.source_workload IS NOT DISTINCT FROM s.source_workload
)
SELECT *
FROM ranked
WHERE $top IS NULL OR rank <= $top
ORDER BY rank
