-- Question: which flows could replay not decide, why, and what input would let it decide them?
-- One row per policy set (`current`, `proposed`) and reason code, ranked by flows. A flow is `unknown` when the
-- deciding rule needs a fact the log does not carry (an aggregated-away IP, a named port without a Pod list,
-- namespace labels without a Namespace list, …); flowstage never guesses it.
--
-- Counting: a connection reported by both ends counts once (the larger of the two reporters' totals for each
-- client→server pair), and copies of a split record count once. A record without a connection count (a Whisker
-- download) counts as one flow.
--
-- Columns:
--   rank            1 = the reason that leaves the most flows undecided
--   policy_set      `current` (policies enforced now) or `proposed` (after promoting every staged object)
--   reason          reason code (flowstage.policy.traffic.Reason)
--   flows           undecided connections, summed over logging windows (`num_flows`)
--   bytes           bytes of those connections, both directions
--   allowed_today   of those flows, how many the dataplane logged as allowed: for `proposed`, traffic that might
--                   break
--   pairs           distinct client→server pairs (workload to workload, port, protocol) affected
--   top_pair        the pair with the most such flows, as namespace/workload → namespace/workload:port/protocol
--   example_row     one affected row (`row_id`, i.e. file:line) to inspect with `flowstage explain --row`
--   remedy          what input would resolve it
-- Parameter: $top — keep the first N rows (NULL keeps all).
-- Show: rank, policy_set, reason, flows, allowed_today, top_pair, remedy
WITH
-- What resolves each reason; the same sentences as flowstage.policy.traffic.Reason.remedy.
remedies (reason, remedy) AS (
    VALUES
        ('source_ip_unknown', 'log with less aggregation (flowLogsFileAggregationKind 0 or 1) so source IPs are kept'),
        ('dest_ip_unknown', 'log with less aggregation (flowLogsFileAggregationKind 0 or 1) so destination IPs are kept'),
        ('source_port_unknown', 'log with aggregation level 0 so source ports are kept'),
        ('dest_port_unknown', 'log with aggregation below level 3 so destination ports are kept'),
        ('named_port_unknown', 'supply a Pod list (--pods, `kubectl get pods -A -o yaml`) to resolve named ports'),
        ('namespace_labels_unknown', 'supply a Namespace list (--namespaces, `kubectl get ns -o yaml`)'),
        ('service_account_unknown', 'supply a Pod list (--pods) so service accounts are known'),
        ('labels_unknown', 'enable flowLogsFileIncludeLabels so endpoint labels are logged'),
        ('ip_version_unknown', 'log with less aggregation so IPs (and their family) are kept'),
        ('icmp_type_unknown', 'flow logs never carry ICMP type/code; such rules can only be judged by hand'),
        ('service_endpoints_unknown', '`services` rules need the Service''s EndpointSlices, which flowstage does not load'),
        ('forwarded_not_modelled', 'forwarded (fwd) rows are judged by host-endpoint applyOnForward policy, not replayed'),
        ('not_a_policy_endpoint', 'only pods (wep) and host endpoints (hep) have policy; check the row''s endpoint type'),
        ('protocol_unknown', 'the row carries no protocol; check the ingested proto / proto_num columns'),
        ('host_endpoint_unknown', 'supply the HostEndpoint objects (`calicoctl get hostendpoints -o yaml`) with the policies'),
        ('profile_unknown', 'supply the Profile objects the endpoint lists (`calicoctl get profiles -o yaml`)')
),
-- One pass over the findings, each row once per policy set that could not decide it.
unknowns AS (
    SELECT
        s.policy_set,
        COALESCE(CASE s.policy_set WHEN 'current' THEN r.current_reason ELSE r.proposed_reason END,
            'no_reason_given') AS reason,
        r.row_id,
        r.reporter, r.host, r.source_file, r.start_time, r.end_time,
        r.source_type, r.source_namespace, r.source_name, r.source_name_aggr, r.source_ip, r.source_port,
        r.dest_type, r.dest_namespace, r.dest_name, r.dest_name_aggr, r.dest_ip, r.dest_port, r.proto, r.action,
        r.num_flows, r.bytes_in, r.bytes_out, r.packets_in, r.packets_out
    FROM findings AS r
    CROSS JOIN (VALUES ('current'), ('proposed')) AS s (policy_set)
    WHERE (r.current_verdict = 'unknown' OR r.proposed_verdict = 'unknown')
      AND CASE s.policy_set WHEN 'current' THEN r.current_verdict ELSE r.proposed_verdict END = 'unknown'
),
undecided AS (
    SELECT DISTINCT
        policy_set, reason,
        reporter, host, source_file, start_time, end_time,
        source_type, source_namespace, source_name, source_name_aggr, source_ip, source_port,
        dest_type, dest_namespace, dest_name, dest_name_aggr, dest_ip, dest_port, proto, action,
        num_flows, bytes_in, bytes_out, packets_in, packets_out
    FROM unknowns
),
named AS (
    SELECT
        policy_set, reason,
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
        COALESCE(bytes_in, 0) + COALESCE(bytes_out, 0) AS bytes,
        CASE WHEN action = 'allow' THEN COALESCE(num_flows, 1) ELSE 0 END AS allowed_flows
    FROM undecided
),
per_reporter AS (
    SELECT
        policy_set, reason, source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, side,
        sum(flows) AS flows, sum(bytes) AS bytes, sum(allowed_flows) AS allowed_flows
    FROM named
    GROUP BY policy_set, reason, source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto,
        side
),
pairs AS (
    SELECT
        policy_set, reason, source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto,
        max(flows) AS flows, max(bytes) AS bytes, max(allowed_flows) AS allowed_flows
    FROM per_reporter
    GROUP BY policy_set, reason, source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto
),
pairs_ranked AS (
    SELECT
        pairs.*,
        row_number() OVER (
            PARTITION BY policy_set, reason
            ORDER BY flows DESC, bytes DESC, source_namespace, source_workload, dest_namespace, dest_workload,
                dest_port, proto
        ) AS pair_rank
    FROM pairs
),
reasons AS (
    SELECT
        policy_set, reason,
        sum(flows) AS flows, sum(bytes) AS bytes, sum(allowed_flows) AS allowed_today, count(*) AS pairs,
        max(CASE WHEN pair_rank = 1
            THEN COALESCE(source_namespace || '/', '') || source_workload || ' → '
                || COALESCE(dest_namespace || '/', '') || dest_workload
                || COALESCE(':' || CAST(dest_port AS VARCHAR), '') || '/' || proto END) AS top_pair
    FROM pairs_ranked
    GROUP BY policy_set, reason
),
examples AS (
    SELECT policy_set, reason, min(row_id) AS example_row
    FROM unknowns
    GROUP BY policy_set, reason
),
ranked AS (
    SELECT
        row_number() OVER (ORDER BY r.flows DESC, r.bytes DESC, r.policy_set DESC, r.reason) AS rank,
        r.policy_set, r.reason, r.flows, r.bytes, r.allowed_today, r.pairs, r.top_pair, e.example_row,
        COALESCE(m.remedy, 'no remedy known for this reason code') AS remedy
    FROM reasons AS r
    JOIN examples AS e ON e.policy_set = r.policy_set AND e.reason = r.reason
    LEFT JOIN remedies AS m ON m.reason = r.reason
)
SELECT *
FROM ranked
WHERE $top IS NULL OR rank <= $top
ORDER BY rank
