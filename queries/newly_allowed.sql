-- Question: which traffic is denied today but would be allowed if every staged policy were promoted?
-- (A staged `Delete` that removes a deny, a staged allow placed before today's deny, …) One row per destination
-- (namespace, workload, port, protocol), ranked by flows, then bytes.
--
-- Counting: as in would_break.sql, a connection reported by both ends counts once (the larger of the two reporters'
-- totals for each client→server pair), and copies of a split record count once. A record without a connection count
-- (a Whisker download) counts as one flow.
--
-- Columns:
--   rank                  1 = the destination that would gain the most flows
--   dest_namespace        namespace of the server; NULL for host endpoints, global network sets and external networks
--   dest_workload         the server: pod name prefix without the ReplicaSet hash or StatefulSet ordinal, host
--                         endpoint or node, network set, or `pub` / `pvt`
--   dest_port             destination port after DNAT; NULL when not logged
--   proto                 L4 protocol
--   flows                 connections denied today that would be allowed, summed over logging windows (`num_flows`)
--   bytes                 bytes logged for those attempts, both directions
--   sources               distinct client workloads that would gain access
--   top_source            the client with the most such flows, as namespace/workload
--   first_seen            start of the first logging window with such traffic
--   last_seen             end of the last one
--   denied_now_by_tier    tier of the policy that denies most of these flows today
--   denied_now_by_policy  that policy (`name` or `namespace/name`, a profile, or the policy that triggered an
--                         end-of-tier deny)
--   denied_now_by_rule    rule index in that policy; -1 = end of tier
--   allowed_by_tier       tier of the policy that would allow them after promotion
--   allowed_by_policy     that policy as written; a profile (`kns.<namespace>`) when no policy would decide any more
--   allowed_by_rule       rule index in that policy
--   allowed_by_staged     true when that policy is one of the staged objects being promoted
-- Parameter: $top — keep the first N rows (NULL keeps all).
-- Show: rank, dest_namespace, dest_workload, dest_port, proto, flows, sources, top_source, denied_now_by_policy, denied_now_by_rule, allowed_by_policy, allowed_by_rule, allowed_by_staged
WITH
opening AS (
    SELECT DISTINCT
        reporter, host, source_file, start_time, end_time,
        source_type, source_namespace, source_name, source_name_aggr, source_ip, source_port,
        dest_type, dest_namespace, dest_name, dest_name_aggr, dest_ip, dest_port, proto,
        num_flows, bytes_in, bytes_out, packets_in, packets_out,
        current_tier, current_policy, current_rule,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged
    FROM findings
    -- Logged deny, allowed after promotion, and not already allowed by the supplied policies today: when the
    -- current set allows what the dataplane denied, the inputs differ from what was enforced (see fidelity),
    -- which is not promotion's doing.
    WHERE newly_allowed AND current_verdict <> 'allow'
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
        current_tier, current_policy, current_rule,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged
    FROM opening
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
        current_tier, current_policy, current_rule,
        proposed_tier, proposed_policy, proposed_rule, proposed_staged,
        row_number() OVER (
            PARTITION BY dest_namespace, dest_workload, dest_port, proto
            ORDER BY sum(flows) DESC, sum(bytes) DESC, proposed_policy, proposed_rule, current_policy, current_rule
        ) AS decider_rank
    FROM named
    GROUP BY dest_namespace, dest_workload, dest_port, proto,
        current_tier, current_policy, current_rule, proposed_tier, proposed_policy, proposed_rule, proposed_staged
),
ranked AS (
    SELECT
        row_number() OVER (
            ORDER BY d.flows DESC, d.bytes DESC, d.dest_namespace, d.dest_workload, d.dest_port, d.proto
        ) AS rank,
        d.dest_namespace, d.dest_workload, d.dest_port, d.proto,
        d.flows, d.bytes, d.sources, d.top_source, d.first_seen, d.last_seen,
        p.current_tier AS denied_now_by_tier,
        p.current_policy AS denied_now_by_policy,
        p.current_rule AS denied_now_by_rule,
        p.proposed_tier AS allowed_by_tier,
        p.proposed_policy AS allowed_by_policy,
        p.proposed_rule AS allowed_by_rule,
        p.proposed_staged AS allowed_by_staged
    FROM destinations AS d
    JOIN deciders AS p
        ON p.decider_rank = 1
        AND p.dest_namespace IS NOT DISTINCT FROM d.dest_namespace
        AND p.dest_workload IS NOT DISTINCT FROM d.dest_workload
        AND p.dest_port IS NOT DISTINCT FROM d.dest_port
        AND p.proto IS NOT DISTINCT FROM d.proto
)
SELECT *
FROM ranked
WHERE $top IS NULL OR rank <= $top
ORDER BY rank
