-- Question: which traffic is kept open only by a safety net — a broad allow-everything policy such as
-- `zzz-final-allow-everything` — and would break the day the net is removed?
-- Replay evaluates every policy set a second time with its safety nets taken out (`*_without_nets` columns); a
-- flow is listed when the net is what allows it and the set without the net denies it, today or after
-- promotion. One row per destination (namespace, workload, port, protocol), ranked by flows after promotion,
-- then flows today, then bytes.
--
-- Counting: a connection reported by both ends counts once (the larger of the two reporters' totals for each
-- client→server pair), and copies of a split record count once. A record without a connection count (a Whisker
-- download) counts as one flow.
--
-- Columns:
--   rank                   1 = the destination that leans hardest on a net
--   dest_namespace         namespace of the server; NULL for host endpoints, global network sets and external
--                          networks
--   dest_workload          the server: pod name prefix without the ReplicaSet hash or StatefulSet ordinal, host
--                          endpoint or node, network set, or `pub` / `pvt`
--   dest_port              destination port after DNAT; NULL when not logged
--   proto                  L4 protocol
--   flows_after_promotion  flows only a net would allow once every staged policy is promoted: they break when
--                          the net is removed after promotion (summed over logging windows, `num_flows`)
--   flows_today            flows only a net allows with today's policies: they break if the net is removed now
--   bytes                  bytes of the flows listed, both directions
--   sources                distinct client workloads affected
--   top_source             the client with the most such flows, as namespace/workload
--   kept_open_by           the safety net that allows them (the one deciding most of these flows)
--   denied_without_net_by  the policy that would deny them without the net (`policy rule N`, or `policy end of
--                          tier` for a tier's default deny triggered by that policy)
--   first_seen             start of the first logging window with such traffic
--   last_seen              end of the last one
-- Parameter: $top — keep the first N rows (NULL keeps all).
-- Show: rank, dest_namespace, dest_workload, dest_port, proto, flows_after_promotion, flows_today, top_source, kept_open_by, denied_without_net_by
WITH
held AS (
    SELECT DISTINCT
        reporter, host, source_file, start_time, end_time,
        source_type, source_namespace, source_name, source_name_aggr, source_ip, source_port,
        dest_type, dest_namespace, dest_name, dest_name_aggr, dest_ip, dest_port, proto,
        num_flows, bytes_in, bytes_out, packets_in, packets_out,
        current_verdict, current_policy, current_without_nets_verdict, current_without_nets_policy,
        current_without_nets_rule,
        proposed_verdict, proposed_policy, proposed_without_nets_verdict, proposed_without_nets_policy,
        proposed_without_nets_rule
    FROM findings
    WHERE (current_verdict = 'allow' AND current_without_nets_verdict = 'deny')
       OR (proposed_verdict = 'allow' AND proposed_without_nets_verdict = 'deny')
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
        CASE WHEN proposed_verdict = 'allow' AND proposed_without_nets_verdict = 'deny'
            THEN COALESCE(num_flows, 1) ELSE 0 END AS flows_after_promotion,
        CASE WHEN current_verdict = 'allow' AND current_without_nets_verdict = 'deny'
            THEN COALESCE(num_flows, 1) ELSE 0 END AS flows_today,
        COALESCE(bytes_in, 0) + COALESCE(bytes_out, 0) AS bytes,
        CASE WHEN proposed_verdict = 'allow' AND proposed_without_nets_verdict = 'deny'
            THEN proposed_policy ELSE current_policy END AS net,
        CASE WHEN proposed_verdict = 'allow' AND proposed_without_nets_verdict = 'deny'
            THEN proposed_without_nets_policy || CASE WHEN proposed_without_nets_rule = -1 THEN ' end of tier'
                ELSE ' rule ' || CAST(proposed_without_nets_rule AS VARCHAR) END
            ELSE current_without_nets_policy || CASE WHEN current_without_nets_rule = -1 THEN ' end of tier'
                ELSE ' rule ' || CAST(current_without_nets_rule AS VARCHAR) END
        END AS denier
    FROM held
),
per_reporter AS (
    SELECT
        dest_namespace, dest_workload, dest_port, proto, source_namespace, source_workload, side,
        sum(flows_after_promotion) AS flows_after_promotion, sum(flows_today) AS flows_today,
        sum(bytes) AS bytes, min(start_time) AS first_seen, max(end_time) AS last_seen
    FROM named
    GROUP BY dest_namespace, dest_workload, dest_port, proto, source_namespace, source_workload, side
),
pairs AS (
    SELECT
        dest_namespace, dest_workload, dest_port, proto, source_namespace, source_workload,
        max(flows_after_promotion) AS flows_after_promotion, max(flows_today) AS flows_today,
        max(bytes) AS bytes, min(first_seen) AS first_seen, max(last_seen) AS last_seen
    FROM per_reporter
    GROUP BY dest_namespace, dest_workload, dest_port, proto, source_namespace, source_workload
),
pairs_ranked AS (
    SELECT
        pairs.*,
        row_number() OVER (
            PARTITION BY dest_namespace, dest_workload, dest_port, proto
            ORDER BY flows_after_promotion + flows_today DESC, bytes DESC, source_namespace, source_workload
        ) AS source_rank
    FROM pairs
),
destinations AS (
    SELECT
        dest_namespace, dest_workload, dest_port, proto,
        sum(flows_after_promotion) AS flows_after_promotion,
        sum(flows_today) AS flows_today,
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
        dest_namespace, dest_workload, dest_port, proto, net, denier,
        row_number() OVER (
            PARTITION BY dest_namespace, dest_workload, dest_port, proto
            ORDER BY sum(flows_after_promotion + flows_today) DESC, sum(bytes) DESC, net, denier
        ) AS decider_rank
    FROM named
    GROUP BY dest_namespace, dest_workload, dest_port, proto, net, denier
),
ranked AS (
    SELECT
        row_number() OVER (
            ORDER BY d.flows_after_promotion DESC, d.flows_today DESC, d.bytes DESC,
                d.dest_namespace, d.dest_workload, d.dest_port, d.proto
        ) AS rank,
        d.dest_namespace, d.dest_workload, d.dest_port, d.proto,
        d.flows_after_promotion, d.flows_today, d.bytes, d.sources, d.top_source,
        p.net AS kept_open_by,
        p.denier AS denied_without_net_by,
        d.first_seen, d.last_seen
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
