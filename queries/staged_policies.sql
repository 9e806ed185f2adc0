-- Question: what would each staged policy do once promoted — what it would deny and allow, which endpoints it
-- selects, which of its rules no flow ever reached, and whether it changes anything at all?
-- One row per staged object (StagedGlobalNetworkPolicy, StagedNetworkPolicy, StagedKubernetesNetworkPolicy),
-- ranked by the flows it would break, then the flows whose verdict it changes.
--
-- A flow belongs to a staged object when the object decides it after promotion (a rule, or the end of its tier
-- with the object as trigger); for a staged `Delete`, when the deleted policy decides it today and its verdict
-- changes. Counting: a connection reported by both ends counts once (the larger of the two reporters' totals for
-- each client→server pair), and copies of a split record count once. A record without a connection count (a Whisker
-- download) counts as one flow.
--
-- Columns:
--   rank                 1 = the staged object that would break the most flows
--   policy               the staged object as written (`name` or `namespace/name`)
--   kind                 its kind
--   tier                 its tier (NULL for a Delete, which is not evaluated)
--   promotion            what promoting it does: replaces / adds / deletes an enforced object, or nothing (not
--                        promoted: stagedAction Learn or Ignore; a Delete whose target is not among the inputs)
--   promotion_action     the same in one word: adds, replaces, deletes, not promoted, delete of a missing object
--   promoted             whether promotion enforces or deletes anything for it
--   deny_rows            log records it would deny (each reporter's record is one; a split record's copies one)
--   deny_flows           flows it would deny, summed over logging windows (`num_flows`)
--   deny_bytes           bytes of those flows, both directions
--   allow_rows           log records it would allow
--   allow_flows          flows it would allow
--   allow_bytes          bytes of those flows
--   would_break_flows    of the denied flows, those allowed today
--   newly_allowed_flows  of the allowed flows, those denied today
--   changed_flows        flows whose verdict it changes (allow ↔ deny, or to or from unknown)
--   changes_anything     whether promoting it changes any logged verdict
--   endpoints_selected   logged workloads and host endpoints (with labels logged) its selector matches, in its
--                        namespace for namespaced kinds; a namespaceSelector or serviceAccountSelector on a global
--                        policy is not applied here, so this may count more than Calico would select
--   rules                its allow and deny rules (Pass and Log rules never decide a flow, so they are left out)
--   dead_rules           how many of those rules decided no logged flow after promotion
--   dead_rule_list       those rules, as direction[index] (e.g. `ingress[2]`)
-- Parameter: $top — keep the first N rows (NULL keeps all).
-- Show: rank, policy, promotion_action, would_break_flows, deny_flows, allow_flows, changed_flows, endpoints_selected, rules, dead_rule_list
WITH
steps AS (
    SELECT
        step.policy AS policy, step.kind AS policy_kind, step.tier AS tier, step.action AS action,
        step.target_kind AS target_kind, step.description AS promotion
    FROM (SELECT unnest(promotion) AS step FROM replay_info) AS p
),
evaluated AS (
    SELECT policy, policy_kind, namespace, selector
    FROM replay_policies
    WHERE set_name = 'pending' AND staged
),
objects AS (
    SELECT
        s.policy, s.policy_kind,
        CASE s.policy_kind
            WHEN 'sgnp' THEN 'StagedGlobalNetworkPolicy'
            WHEN 'snp' THEN 'StagedNetworkPolicy'
            WHEN 'sknp' THEN 'StagedKubernetesNetworkPolicy'
            ELSE s.policy_kind
        END AS kind,
        CASE WHEN s.action IN ('deletes', 'delete of a missing object') THEN NULL ELSE s.tier END AS tier,
        s.promotion,
        s.action AS promotion_action,
        s.action IN ('adds', 'replaces', 'deletes') AS promoted,
        CASE WHEN s.action = 'deletes' THEN s.target_kind END AS deletes_kind,
        e.namespace, e.selector
    FROM steps AS s
    LEFT JOIN evaluated AS e ON e.policy = s.policy AND e.policy_kind = s.policy_kind
),
-- One pass over the findings: the rows a staged object decides after promotion, and the changed rows a deleted
-- policy decides today; `attributed` and `hits` both read this.
involved AS (
    SELECT
        reporter, host, source_file, start_time, end_time,
        source_type, source_namespace, source_name, source_name_aggr, source_ip, source_port,
        dest_type, dest_namespace, dest_name, dest_name_aggr, dest_ip, dest_port, proto,
        num_flows, bytes_in, bytes_out, packets_in, packets_out,
        current_policy, current_policy_kind,
        proposed_verdict, proposed_staged, proposed_policy, proposed_policy_kind, proposed_rule,
        would_break, newly_allowed, verdict_changed
    FROM findings
    WHERE proposed_staged OR verdict_changed
),
attributed AS (
    SELECT DISTINCT
        o.policy AS staged_policy, o.policy_kind AS staged_kind,
        r.reporter, r.host, r.source_file, r.start_time, r.end_time,
        r.source_type, r.source_namespace, r.source_name, r.source_name_aggr, r.source_ip, r.source_port,
        r.dest_type, r.dest_namespace, r.dest_name, r.dest_name_aggr, r.dest_ip, r.dest_port, r.proto,
        r.num_flows, r.bytes_in, r.bytes_out, r.packets_in, r.packets_out,
        r.proposed_verdict, r.would_break, r.newly_allowed, r.verdict_changed
    FROM involved AS r
    JOIN objects AS o
        ON (r.proposed_staged AND r.proposed_policy = o.policy AND r.proposed_policy_kind = o.policy_kind)
        OR (r.verdict_changed AND r.current_policy = o.policy AND r.current_policy_kind = o.deletes_kind)
),
named AS (
    SELECT
        staged_policy, staged_kind,
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
        proposed_verdict, would_break, newly_allowed, verdict_changed
    FROM attributed
),
per_reporter AS (
    SELECT
        staged_policy, staged_kind,
        source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, side,
        sum(CASE WHEN proposed_verdict = 'deny' THEN flows ELSE 0 END) AS deny_flows,
        sum(CASE WHEN proposed_verdict = 'deny' THEN bytes ELSE 0 END) AS deny_bytes,
        sum(CASE WHEN proposed_verdict = 'allow' THEN flows ELSE 0 END) AS allow_flows,
        sum(CASE WHEN proposed_verdict = 'allow' THEN bytes ELSE 0 END) AS allow_bytes,
        sum(CASE WHEN would_break THEN flows ELSE 0 END) AS would_break_flows,
        sum(CASE WHEN newly_allowed THEN flows ELSE 0 END) AS newly_allowed_flows,
        sum(CASE WHEN verdict_changed THEN flows ELSE 0 END) AS changed_flows
    FROM named
    GROUP BY staged_policy, staged_kind,
        source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, side
),
pairs AS (
    SELECT
        staged_policy, staged_kind,
        max(deny_flows) AS deny_flows, max(deny_bytes) AS deny_bytes,
        max(allow_flows) AS allow_flows, max(allow_bytes) AS allow_bytes,
        max(would_break_flows) AS would_break_flows, max(newly_allowed_flows) AS newly_allowed_flows,
        max(changed_flows) AS changed_flows
    FROM per_reporter
    GROUP BY staged_policy, staged_kind,
        source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto
),
effects AS (
    SELECT
        staged_policy, staged_kind,
        sum(deny_flows) AS deny_flows, sum(deny_bytes) AS deny_bytes,
        sum(allow_flows) AS allow_flows, sum(allow_bytes) AS allow_bytes,
        sum(would_break_flows) AS would_break_flows, sum(newly_allowed_flows) AS newly_allowed_flows,
        sum(changed_flows) AS changed_flows
    FROM pairs
    GROUP BY staged_policy, staged_kind
),
records AS (
    SELECT
        staged_policy, staged_kind,
        sum(CASE WHEN proposed_verdict = 'deny' THEN 1 ELSE 0 END) AS deny_rows,
        sum(CASE WHEN proposed_verdict = 'allow' THEN 1 ELSE 0 END) AS allow_rows
    FROM attributed
    GROUP BY staged_policy, staged_kind
),
-- The logged endpoints, read from the replay's distinct keys (each row's endpoints are among them).
endpoints AS (
    -- A workload logged with different labels (a rollout) counts once, with the label set that sorts last.
    SELECT type, namespace, workload,
        max_by(labels, array_to_string(list_sort(list_transform(map_entries(labels), lambda e: e.key || '=' || COALESCE(e.value, ''))), ',')) AS labels
    FROM (
        SELECT source_type AS type, source_namespace AS namespace,
            COALESCE(source_name_aggr, source_name, source_ip) AS workload, source_labels AS labels
        FROM verdicts
        WHERE source_type IN ('wep', 'hep') AND source_labels IS NOT NULL
        UNION ALL
        SELECT dest_type AS type, dest_namespace AS namespace,
            COALESCE(dest_name_aggr, dest_name, dest_ip) AS workload, dest_labels AS labels
        FROM verdicts
        WHERE dest_type IN ('wep', 'hep') AND dest_labels IS NOT NULL
    ) AS seen
    GROUP BY type, namespace, workload
),
-- A namespaced object selects in its namespace only: an equality join, so its selector meets those endpoints alone.
candidates AS (
    SELECT o.policy, o.policy_kind, o.selector, e.type, e.namespace, e.labels
    FROM objects AS o
    JOIN endpoints AS e ON e.namespace = o.namespace
    WHERE o.selector IS NOT NULL
    UNION ALL
    SELECT o.policy, o.policy_kind, o.selector, e.type, e.namespace, e.labels
    FROM objects AS o
    CROSS JOIN endpoints AS e
    WHERE o.selector IS NOT NULL AND o.namespace IS NULL
),
selected AS (
    SELECT policy, policy_kind, count(*) AS endpoints_selected
    FROM candidates
    WHERE selector_match(
        selector,
        CASE WHEN type = 'wep' THEN map_concat(labels, map(
            ['projectcalico.org/namespace', 'projectcalico.org/orchestrator'], [namespace, 'k8s']))
        ELSE labels END
    )
    GROUP BY policy, policy_kind
),
rules AS (
    SELECT policy, policy_kind, direction, rule
    FROM replay_rules
    WHERE set_name = 'proposed' AND staged AND action IN ('allow', 'deny')
),
hits AS (
    SELECT DISTINCT
        proposed_policy AS policy, proposed_policy_kind AS policy_kind,
        CASE WHEN reporter LIKE 'dst%' THEN 'ingress' WHEN reporter LIKE 'src%' THEN 'egress' END AS direction,
        proposed_rule AS rule
    FROM involved
    WHERE proposed_staged AND proposed_rule >= 0
),
rule_use AS (
    SELECT
        r.policy, r.policy_kind,
        count(*) AS rules,
        sum(CASE WHEN h.rule IS NULL THEN 1 ELSE 0 END) AS dead_rules,
        string_agg(CASE WHEN h.rule IS NULL THEN r.direction || '[' || CAST(r.rule AS VARCHAR) || ']' END, ', '
            ORDER BY r.direction DESC, r.rule) AS dead_rule_list
    FROM rules AS r
    LEFT JOIN hits AS h
        ON h.policy = r.policy AND h.policy_kind = r.policy_kind AND h.direction = r.direction AND h.rule = r.rule
    GROUP BY r.policy, r.policy_kind
),
ranked AS (
    SELECT
        row_number() OVER (
            ORDER BY COALESCE(f.would_break_flows, 0) DESC, COALESCE(f.changed_flows, 0) DESC,
                COALESCE(f.deny_flows, 0) DESC, o.policy, o.kind
        ) AS rank,
        o.policy, o.kind, o.tier, o.promotion, o.promotion_action, o.promoted,
        COALESCE(c.deny_rows, 0) AS deny_rows,
        COALESCE(f.deny_flows, 0) AS deny_flows,
        COALESCE(f.deny_bytes, 0) AS deny_bytes,
        COALESCE(c.allow_rows, 0) AS allow_rows,
        COALESCE(f.allow_flows, 0) AS allow_flows,
        COALESCE(f.allow_bytes, 0) AS allow_bytes,
        COALESCE(f.would_break_flows, 0) AS would_break_flows,
        COALESCE(f.newly_allowed_flows, 0) AS newly_allowed_flows,
        COALESCE(f.changed_flows, 0) AS changed_flows,
        COALESCE(f.changed_flows, 0) > 0 AS changes_anything,
        CASE WHEN o.selector IS NULL THEN NULL ELSE COALESCE(s.endpoints_selected, 0) END AS endpoints_selected,
        CASE WHEN o.promoted AND o.deletes_kind IS NULL THEN COALESCE(u.rules, 0) END AS rules,
        CASE WHEN o.promoted AND o.deletes_kind IS NULL THEN COALESCE(u.dead_rules, 0) END AS dead_rules,
        CASE WHEN o.promoted AND o.deletes_kind IS NULL THEN u.dead_rule_list END AS dead_rule_list
    FROM objects AS o
    LEFT JOIN effects AS f ON f.staged_policy = o.policy AND f.staged_kind = o.policy_kind
    LEFT JOIN records AS c ON c.staged_policy = o.policy AND c.staged_kind = o.policy_kind
    LEFT JOIN selected AS s ON s.policy = o.policy AND s.policy_kind = o.policy_kind
    LEFT JOIN rule_use AS u ON u.policy = o.policy AND u.policy_kind = o.policy_kind
)
SELECT *
FROM ranked
WHERE $top IS NULL OR rank <= $top
ORDER BY rank
