-- Question: does the replayed model agree with what the dataplane actually logged — and where it does not, why?
-- Two comparisons, row by row (the `fidelity` view): `current` compares the replayed current verdict and its
-- deciding policy with the logged action and enforced trace; `pending` compares the replayed pending verdict
-- with the logged `pending_policies` trace (Calico's own evaluation of the staged policies). One row per
-- comparison, outcome and verdict agreement: agreement first, then each disagreement reason, by rows.
--
-- Counting: rows, not connections — each reporter's record is its own observation of the dataplane's decision,
-- so a connection logged by both ends is two observations here.
--
-- Columns:
--   comparison        `current` (logged action and enforced trace) or `pending` (logged pending trace)
--   outcome           `agree`, or the reason code of the disagreement
--   verdict_agrees    whether the replayed and logged verdicts agree for these rows (NULL: nothing to compare);
--                     a disagreement on the deciding policy can come with the same verdict
--   rows              rows with this outcome
--   share             rows / all rows of this comparison
--   flows             `num_flows` summed over those rows
--   logged_decider    the deciding hit the log names most often for these rows (`tier/policy rule N`)
--   replayed_decider  the decider replay names most often for these rows
--   example_row       one such row (`row_id`, file:line) to inspect with `flowstage explain --row`
--   meaning           what the outcome means and what to do about it
-- Show: comparison, outcome, verdict_agrees, rows, share, logged_decider, replayed_decider, meaning
WITH
meanings (outcome, meaning) AS (
    VALUES
        ('agree', 'replayed verdict and deciding policy match the log'),
        ('different_deciding_policy',
            'same verdict, but another policy, rule or tier decided: check policy order and tiers against the cluster'),
        ('verdict_differs',
            'replay reaches another verdict although every logged policy was supplied: the supplied policies differ from what was enforced when the row was logged (changed since?), or the model is wrong; inspect with flowstage explain'),
        ('policy_not_supplied',
            'the log names a policy the supplied files lack: pass every policy in force (kubectl get globalnetworkpolicies,networkpolicies -A -o yaml)'),
        ('unknown_verdict', 'replay could not decide: see unknown_verdicts for the missing input'),
        ('no_logged_trace',
            'the row carries no pending_policies trace to compare with (older Calico, or policies not logged)'),
        ('no_logged_verdict', 'the logged trace does not end in allow or deny'),
        ('not_replayed', 'the row was ingested after the replay ran: run flowstage replay again')
),
-- One pass over the fidelity view, its rows grouped by everything both comparisons read: the rest works on groups.
compared AS (
    SELECT
        current_disagreement, current_agrees, logged_tier, logged_policy, logged_rule,
        current_tier, current_policy, current_rule,
        pending_disagreement, pending_agrees, logged_pending_tier, logged_pending_policy, logged_pending_rule,
        pending_tier, pending_policy, pending_rule,
        count(*) AS rows, sum(COALESCE(num_flows, 1)) AS flows, min(row_id) AS example_row
    FROM fidelity
    GROUP BY
        current_disagreement, current_agrees, logged_tier, logged_policy, logged_rule,
        current_tier, current_policy, current_rule,
        pending_disagreement, pending_agrees, logged_pending_tier, logged_pending_policy, logged_pending_rule,
        pending_tier, pending_policy, pending_rule
),
observations AS (
    SELECT
        'current' AS comparison,
        COALESCE(current_disagreement, 'agree') AS outcome,
        current_agrees AS verdict_agrees,
        rows, flows,
        COALESCE(logged_tier || '/', '') || logged_policy || CASE WHEN logged_rule IS NULL THEN ''
            WHEN logged_rule = -1 THEN ' end of tier' ELSE ' rule ' || CAST(logged_rule AS VARCHAR) END AS logged_decider,
        COALESCE(current_tier || '/', '') || current_policy || CASE WHEN current_rule IS NULL THEN ''
            WHEN current_rule = -1 THEN ' end of tier' ELSE ' rule ' || CAST(current_rule AS VARCHAR) END AS replayed_decider,
        example_row
    FROM compared
    UNION ALL
    SELECT
        'pending' AS comparison,
        COALESCE(pending_disagreement, 'agree') AS outcome,
        pending_agrees AS verdict_agrees,
        rows, flows,
        COALESCE(logged_pending_tier || '/', '') || logged_pending_policy || CASE WHEN logged_pending_rule IS NULL THEN ''
            WHEN logged_pending_rule = -1 THEN ' end of tier' ELSE ' rule ' || CAST(logged_pending_rule AS VARCHAR) END AS logged_decider,
        COALESCE(pending_tier || '/', '') || pending_policy || CASE WHEN pending_rule IS NULL THEN ''
            WHEN pending_rule = -1 THEN ' end of tier' ELSE ' rule ' || CAST(pending_rule AS VARCHAR) END AS replayed_decider,
        example_row
    FROM compared
),
outcomes AS (
    SELECT comparison, outcome, verdict_agrees, CAST(sum(rows) AS BIGINT) AS rows, sum(flows) AS flows,
        min(example_row) AS example_row
    FROM observations
    GROUP BY comparison, outcome, verdict_agrees
),
logged_deciders AS (
    SELECT
        comparison, outcome, verdict_agrees, logged_decider,
        row_number() OVER (
            PARTITION BY comparison, outcome, verdict_agrees ORDER BY sum(rows) DESC, logged_decider
        ) AS pick
    FROM observations
    WHERE logged_decider IS NOT NULL
    GROUP BY comparison, outcome, verdict_agrees, logged_decider
),
replayed_deciders AS (
    SELECT
        comparison, outcome, verdict_agrees, replayed_decider,
        row_number() OVER (
            PARTITION BY comparison, outcome, verdict_agrees ORDER BY sum(rows) DESC, replayed_decider
        ) AS pick
    FROM observations
    WHERE replayed_decider IS NOT NULL
    GROUP BY comparison, outcome, verdict_agrees, replayed_decider
)
SELECT
    o.comparison,
    o.outcome,
    o.verdict_agrees,
    o.rows,
    CAST(o.rows AS DOUBLE) / sum(o.rows) OVER (PARTITION BY o.comparison) AS share,
    o.flows,
    l.logged_decider,
    r.replayed_decider,
    o.example_row,
    COALESCE(m.meaning, 'see the fidelity view') AS meaning
FROM outcomes AS o
LEFT JOIN meanings AS m ON m.outcome = o.outcome
LEFT JOIN logged_deciders AS l
    ON l.comparison = o.comparison AND l.outcome = o.outcome
    AND l.verdict_agrees IS NOT DISTINCT FROM o.verdict_agrees AND l.pick = 1
LEFT JOIN replayed_deciders AS r
    ON r.comparison = o.comparison AND r.outcome = o.outcome
    AND r.verdict_agrees IS NOT DISTINCT FROM o.verdict_agrees AND r.pick = 1
ORDER BY o.comparison, CASE WHEN o.outcome = 'agree' THEN 0 ELSE 1 END, o.rows DESC, o.outcome, o.verdict_agrees
