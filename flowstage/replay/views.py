"""The SQL of every view a replay publishes: verdicts, replay, connections, fidelity, replay_info,
replay_policies and replay_rules.

Plain DuckDB SQL kept close to the standard (CTEs, CASE, COALESCE, FILTER) so it translates to Spark with sqlglot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flowstage.replay.keys import replay_key_sql

# Evaluated policy sets, in column order. `*_without_nets` is the set with its safety nets (allow-everything
# policies, see flowstage.replay.nets) removed: it differs from its set only where a net decided.
SET_NAMES: tuple[str, ...] = ("current", "proposed", "pending", "current_without_nets", "proposed_without_nets")
VERDICT_FIELDS: tuple[str, ...] = ("verdict", "tier", "policy", "policy_kind", "rule", "staged", "reason")

FilesRef = Callable[[str], str]  # file tag (`verdicts`) -> SQL text naming that Parquet file


def published_file(dataset: str) -> FilesRef:
    """Name `<tag>.parquet` of a published dataset: the store's `{files:<dataset>}` list, narrowed to that file."""
    return lambda tag: f"list_filter({{files:{dataset}}}, lambda f: f LIKE '%/{tag}.parquet')"


def verdict_columns(sets: Sequence[str] = SET_NAMES) -> list[str]:
    return [f"{s}_{f}" for s in sets for f in VERDICT_FIELDS]


def row_id_sql(alias: str = "") -> str:
    """`source_file:source_line`: a row's stable id, as `flowstage explain --row` takes it."""
    p = f"{alias}." if alias else ""
    return f"{p}source_file || ':' || CAST({p}source_line AS VARCHAR)"


def verdicts_view(files: FilesRef, key_columns: Sequence[str]) -> str:
    return (
        "-- verdicts: one row per distinct replay key: the key columns, how many rows and bytes carry it, and its\n"
        "-- verdict under each policy set (<set>_verdict allow/deny/unknown, _tier, _policy, _policy_kind, _rule\n"
        "-- (-1 = end of tier, naming the trigger policy), _staged, _reason (iff unknown)). replay_key is\n"
        "-- computed here from the key columns, by the engine reading the view.\n"
        f"SELECT {replay_key_sql(key_columns)} AS replay_key, * FROM read_parquet({files('verdicts')})"
    )


def replay_view(key_columns: Sequence[str]) -> str:
    verdicts = ",\n       ".join(f"v.{c}" for c in verdict_columns())
    return f"""-- replay: every flows row with its verdict under each policy set, joined on the replay key.
-- would_break: logged allow, denied after promotion; newly_allowed: logged deny, allowed after promotion;
-- verdict_changed: the current and proposed verdicts differ. replayed is FALSE for rows ingested after the
-- replay ran: their verdict columns are NULL until the next replay.
SELECT f.*,
       {row_id_sql('f')} AS row_id,
       v.replay_key IS NOT NULL AS replayed,
       {verdicts},
       COALESCE(f.action = 'allow' AND v.proposed_verdict = 'deny', FALSE) AS would_break,
       COALESCE(f.action = 'deny' AND v.proposed_verdict = 'allow', FALSE) AS newly_allowed,
       COALESCE(v.current_verdict <> v.proposed_verdict, FALSE) AS verdict_changed
FROM (SELECT flows.*, {replay_key_sql(key_columns)} AS replay_key FROM flows) AS f
LEFT JOIN verdicts AS v ON v.replay_key = f.replay_key"""


# What a finding row carries: every flows column but the policy traces and the process, HTTP, TCP and transit
# counters, so a report run can keep the findings at hand.
FINDING_COLUMNS: tuple[str, ...] = (
    "start_time", "end_time",
    "source_type", "source_namespace", "source_name", "source_name_aggr", "source_ip", "source_port", "source_labels",
    "dest_type", "dest_namespace", "dest_name", "dest_name_aggr", "dest_ip", "dest_port", "dest_labels",
    "dest_service_namespace", "dest_service_name", "dest_service_port", "dest_service_port_num",
    "proto", "proto_num", "action", "reporter",
    "bytes_in", "bytes_out", "packets_in", "packets_out", "num_flows", "num_flows_started", "num_flows_completed",
    "host", "cluster", "format", "source_file", "source_line",
)  # fmt: skip

# A row is a finding when promotion changes or decides its verdict, when a set cannot decide it, or when only a
# safety net keeps it open: every row a report other than fidelity looks at.
FINDING = """would_break OR newly_allowed OR verdict_changed OR proposed_staged
   OR current_verdict = 'unknown' OR proposed_verdict = 'unknown'
   OR (current_verdict = 'allow' AND current_without_nets_verdict = 'deny')
   OR (proposed_verdict = 'allow' AND proposed_without_nets_verdict = 'deny')"""


def findings_view() -> str:
    columns = ", ".join(FINDING_COLUMNS)
    verdicts = ", ".join(verdict_columns())
    return f"""-- findings: the replay rows a report looks at, with the columns reports read: rows that would break or be
-- newly allowed, whose verdict promotion changes or a staged policy decides, that the current or proposed set
-- cannot decide (unknown), or that only a safety net keeps open, today or after promotion. Every flows column but
-- the policy traces and the process, HTTP, TCP and transit counters; row_id; the verdict columns of each set;
-- would_break, newly_allowed, verdict_changed. A report run reads the replay for them once.
SELECT {columns}, row_id, {verdicts}, would_break, newly_allowed, verdict_changed
FROM replay
WHERE {FINDING}"""


CONNECTION_COLUMNS: tuple[str, ...] = (
    "start_time",
    "end_time",
    "source_type",
    "source_namespace",
    "source_name",
    "source_name_aggr",
    "source_ip",
    "source_port",
    "dest_type",
    "dest_namespace",
    "dest_name",
    "dest_name_aggr",
    "dest_ip",
    "dest_port",
    "proto",
    "proto_num",
)

_VERDICT_RANK = "CASE {c} WHEN 'deny' THEN 3 WHEN 'unknown' THEN 2 WHEN 'allow' THEN 1 END"
_RANK_VERDICT = "CASE {c} WHEN 3 THEN 'deny' WHEN 2 THEN 'unknown' WHEN 1 THEN 'allow' END"
_ACTION_RANK = "CASE {c} WHEN 'deny' THEN 3 WHEN 'allow' THEN 1 END"
_BREAKING = ("proposed_tier", "proposed_policy", "proposed_policy_kind", "proposed_rule", "proposed_staged")


def connections_view() -> str:
    ident = ", ".join(CONNECTION_COLUMNS)
    breaking_1 = ",\n         ".join(
        f"min_by({c}, row_id) FILTER (WHERE would_break) AS breaking_{c.removeprefix('proposed_')}" for c in _BREAKING
    )
    breaking_2 = ",\n       ".join(
        f"min_by(breaking_{c.removeprefix('proposed_')}, reporter) FILTER (WHERE would_break) "
        f"AS breaking_{c.removeprefix('proposed_')}"
        for c in _BREAKING
    )
    verdict_ranks_1 = ",\n         ".join(
        f"max({_VERDICT_RANK.format(c=f'{s}_verdict')}) AS {s}_rank" for s in ("current", "proposed", "pending")
    )
    verdict_ranks_2 = ",\n       ".join(
        f"{_RANK_VERDICT.format(c=f'max({s}_rank)')} AS {s}_verdict" for s in ("current", "proposed", "pending")
    )
    return f"""-- connections: one row per connection and aggregation window, counted once even when both its source
-- and its destination reported it (flowlog-formats §5.9: each pod-to-pod connection is typically logged twice).
-- Rows combine when they share the window (start_time, end_time), the source identity (type, namespace, name,
-- aggregated name, IP, port), the destination identity (type, namespace, name, aggregated name, IP), dest_port
-- and the protocol. The combining rule:
-- * reporters: the distinct reporters that logged the connection, sorted; rows: how many replay rows combined.
-- * Within one reporter, several rows of one connection are records felix split with copied counters, so each
--   counter is the max over that reporter's rows.
-- * Across reporters: num_flows, num_flows_started, num_flows_completed = max (each side counts the same
--   connections). bytes_to_dest / packets_to_dest (what the source sent: bytes_out of a src row, bytes_in of a
--   dst row) and bytes_to_source / packets_to_source (the replies) = max over reporters: the reporter that saw
--   the whole exchange (a packet dropped on the way is seen by fewer reporters, never more);
--   bytes = bytes_to_dest + bytes_to_source.
-- * action and the current / proposed / pending verdicts: deny if any reporter's row is deny, else unknown if
--   any is unknown, else allow (a connection needs both its egress and its ingress allowed).
-- * would_break: some reporter's row would break; newly_allowed: logged deny and allowed after promotion.
-- * breaking_*: the proposed decider (tier, policy, kind, rule, staged) of the breaking row; when both sides
--   would break, the destination's (reporter dst sorts before src), and within a reporter the first row_id.
-- * *_labels, dest_service_*: any of the combined rows' values (both reporters log the same endpoints).
WITH oriented AS (
  SELECT r.*,
         CASE WHEN reporter LIKE 'dst%' THEN bytes_in ELSE bytes_out END AS bytes_to_dest,
         CASE WHEN reporter LIKE 'dst%' THEN bytes_out ELSE bytes_in END AS bytes_to_source,
         CASE WHEN reporter LIKE 'dst%' THEN packets_in ELSE packets_out END AS packets_to_dest,
         CASE WHEN reporter LIKE 'dst%' THEN packets_out ELSE packets_in END AS packets_to_source
  FROM replay AS r
),
per_reporter AS (
  SELECT {ident}, reporter,
         count(*) AS rows,
         max(num_flows) AS num_flows,
         max(num_flows_started) AS num_flows_started,
         max(num_flows_completed) AS num_flows_completed,
         max(bytes_to_dest) AS bytes_to_dest,
         max(bytes_to_source) AS bytes_to_source,
         max(packets_to_dest) AS packets_to_dest,
         max(packets_to_source) AS packets_to_source,
         max({_ACTION_RANK.format(c='action')}) AS action_rank,
         {verdict_ranks_1},
         max(CASE WHEN would_break THEN 1 ELSE 0 END) = 1 AS would_break,
         {breaking_1},
         min(start_time) AS first_seen,
         any_value(source_labels) AS source_labels,
         any_value(dest_labels) AS dest_labels,
         any_value(dest_service_namespace) AS dest_service_namespace,
         any_value(dest_service_name) AS dest_service_name,
         any_value(dest_service_port) AS dest_service_port,
         any_value(dest_service_port_num) AS dest_service_port_num
  FROM oriented
  GROUP BY {ident}, reporter
)
SELECT {ident},
       array_agg(reporter ORDER BY reporter) AS reporters,
       CAST(sum(rows) AS BIGINT) AS rows,
       max(num_flows) AS num_flows,
       max(num_flows_started) AS num_flows_started,
       max(num_flows_completed) AS num_flows_completed,
       max(bytes_to_dest) AS bytes_to_dest,
       max(bytes_to_source) AS bytes_to_source,
       COALESCE(max(bytes_to_dest), 0) + COALESCE(max(bytes_to_source), 0) AS bytes,
       max(packets_to_dest) AS packets_to_dest,
       max(packets_to_source) AS packets_to_source,
       {_RANK_VERDICT.format(c='max(action_rank)')} AS action,
       {verdict_ranks_2},
       max(CASE WHEN would_break THEN 1 ELSE 0 END) = 1 AS would_break,
       COALESCE(max(action_rank) = 3 AND max(proposed_rank) = 1, FALSE) AS newly_allowed,
       {breaking_2},
       any_value(source_labels) AS source_labels,
       any_value(dest_labels) AS dest_labels,
       any_value(dest_service_namespace) AS dest_service_namespace,
       any_value(dest_service_name) AS dest_service_name,
       any_value(dest_service_port) AS dest_service_port,
       any_value(dest_service_port_num) AS dest_service_port_num
FROM per_reporter
GROUP BY {ident}"""


def _display(hit: str) -> str:
    """A logged hit's policy named as flowstage names policies: `name` or `namespace/name`."""
    return f"CASE WHEN {hit}.namespace IS NULL THEN {hit}.name ELSE {hit}.namespace || '/' || {hit}.name END"


def _tier(hit: str) -> str:
    """A logged hit's tier; Goldmane blanks the tier of profile hits, which are always `__PROFILE__`."""
    return f"CASE WHEN {hit}.kind = 'pro' THEN '__PROFILE__' ELSE {hit}.tier END"


def _display_tiered(hit: str) -> str:
    """The same with the legacy tier prefix put back (pre-3.32 resource names were `<tier>.<name>`)."""
    name = f"{hit}.tier || '.' || {hit}.name"
    return f"CASE WHEN {hit}.namespace IS NULL THEN {name} ELSE {hit}.namespace || '/' || {name} END"


def _log_id(hit: str) -> str:
    return f"{hit}.kind || ':' || COALESCE({hit}.namespace || '/', '') || {hit}.name"


def _same_decider(hit: str, s: str) -> str:
    """Whether a logged deciding hit names the replayed decider of set `s` (NULL when nothing was logged).

    End-of-tier hits compare by tier only: the dataplane names the last enforced policy of the tier as the
    trigger, flowstage the first (staged first), so the trigger name says nothing about agreement.
    """
    return f"""CASE
      WHEN {hit} IS NULL OR {s}_verdict IS NULL THEN NULL
      WHEN {_tier(hit)} IS DISTINCT FROM {s}_tier THEN FALSE
      WHEN COALESCE({hit}.end_of_tier, FALSE) OR {hit}.rule_index = -1 THEN {s}_rule = -1
      WHEN {s}_rule = -1 THEN FALSE
      ELSE {s}_policy IN ({_display(hit)}, {_display_tiered(hit)})
           AND ({hit}.rule_index IS NULL OR {hit}.rule_index < 0 OR {hit}.rule_index = {s}_rule)
    END"""


def _unsupplied(trace: str, supplied: str) -> str:
    """Whether a logged trace names a policy (not a profile or a bare end of tier) the supplied set lacks."""
    return (
        f"COALESCE(array_length(list_filter({trace}, lambda h: h.kind NOT IN ('pro', 'eot') "
        f"AND NOT list_contains({supplied}, {_log_id('h')}))) > 0, FALSE)"
    )


def _final_action(hit: str) -> str:
    """The verdict a logged trace ends in: its last hit's action when that is allow or deny."""
    return f"CASE WHEN {hit}.action IN ('allow', 'deny') THEN {hit}.action END"


def fidelity_view(files: FilesRef) -> str:
    enforced = "enforced_policies"
    legacy = "list_filter(all_policies, lambda h: NOT COALESCE(h.staged, FALSE))"
    # Asked only of rows that disagree, where the CASE reaches it: most rows never walk their trace for it.
    current_unsupplied = _unsupplied("enforced_trace", "current_ids")
    pending_unsupplied = _unsupplied("pending_trace", "pending_ids")
    return f"""-- fidelity: row by row, does the replayed model agree with what the dataplane logged?
-- current: the logged action vs current_verdict; the logged enforced trace (enforced_policies, or for legacy
--   logs all_policies with staged hits removed) names the decider, compared with current_tier/policy/rule.
-- pending: the final action of the logged pending_policies trace vs pending_verdict, deciders likewise.
-- *_agrees: the verdicts agree (NULL when there is nothing to compare: replayed unknown, no logged trace).
-- *_same_decider: the logged deciding hit names the replayed decider (end of tier: same tier, rule -1).
-- *_disagreement, NULL when verdict and decider agree, else one of:
--   unknown_verdict            the replay could not decide (see <set>_reason for the missing fact)
--   no_logged_trace            (pending) the row carries no pending_policies trace to compare with
--   no_logged_verdict          (pending) the logged trace does not end in allow or deny
--   policy_not_supplied        the logged trace names a policy the supplied policies lack
--   verdict_differs            the verdicts differ with every logged policy supplied
--   different_deciding_policy  the verdicts agree but another policy, rule or tier decided
--   not_replayed               the row was ingested after the replay ran
WITH supplied AS (
  SELECT
    array_agg(log_id) FILTER (WHERE set_name = 'current') AS current_ids,
    array_agg(log_id) FILTER (WHERE set_name = 'pending') AS pending_ids
  FROM (SELECT set_name, unnest(log_ids) AS log_id FROM read_parquet({files('policies')})) AS ids
),
logged AS (
  SELECT r.*,
         CASE WHEN array_length({enforced}) > 0 THEN 'enforced_policies'
              WHEN array_length(all_policies) > 0 THEN 'all_policies' END AS logged_trace,
         CASE WHEN array_length({enforced}) > 0 THEN {enforced}
              WHEN array_length(all_policies) > 0 THEN {legacy} END AS enforced_trace,
         CASE WHEN array_length(pending_policies) > 0 THEN pending_policies END AS pending_trace
  FROM replay AS r
),
decided AS (
  SELECT l.*,
         enforced_trace[array_length(enforced_trace)] AS logged_hit,
         pending_trace[array_length(pending_trace)] AS logged_pending_hit,
         s.current_ids, s.pending_ids
  FROM logged AS l CROSS JOIN supplied AS s
),
compared AS (
  SELECT d.*,
         CASE WHEN current_verdict IN ('allow', 'deny') THEN current_verdict = action END AS current_agrees,
         {_same_decider('logged_hit', 'current')} AS current_same_decider,
         {_final_action('logged_pending_hit')} AS logged_pending_action,
         CASE WHEN pending_verdict IN ('allow', 'deny') AND {_final_action('logged_pending_hit')} IS NOT NULL
              THEN pending_verdict = {_final_action('logged_pending_hit')} END AS pending_agrees,
         {_same_decider('logged_pending_hit', 'pending')} AS pending_same_decider
  FROM decided AS d
)
SELECT row_id, replay_key, source_file, source_line, format, start_time, end_time, reporter,
       source_type, source_namespace, source_name, source_name_aggr,
       dest_type, dest_namespace, dest_name, dest_name_aggr,
       dest_port, proto, bytes_in, bytes_out, num_flows,
       action, logged_trace,
       {_tier('logged_hit')} AS logged_tier,
       {_display('logged_hit')} AS logged_policy,
       logged_hit.kind AS logged_policy_kind,
       logged_hit.rule_index AS logged_rule,
       current_verdict, current_tier, current_policy, current_policy_kind, current_rule, current_reason,
       current_agrees, current_same_decider,
       CASE
         WHEN current_verdict IS NULL THEN 'not_replayed'
         WHEN current_verdict = 'unknown' THEN 'unknown_verdict'
         WHEN NOT current_agrees AND {current_unsupplied} THEN 'policy_not_supplied'
         WHEN NOT current_agrees THEN 'verdict_differs'
         WHEN NOT current_same_decider AND {current_unsupplied} THEN 'policy_not_supplied'
         WHEN NOT current_same_decider THEN 'different_deciding_policy'
       END AS current_disagreement,
       logged_pending_action,
       {_tier('logged_pending_hit')} AS logged_pending_tier,
       {_display('logged_pending_hit')} AS logged_pending_policy,
       logged_pending_hit.kind AS logged_pending_policy_kind,
       logged_pending_hit.rule_index AS logged_pending_rule,
       pending_verdict, pending_tier, pending_policy, pending_policy_kind, pending_rule, pending_reason,
       pending_agrees, pending_same_decider,
       CASE
         WHEN logged_pending_hit IS NULL THEN 'no_logged_trace'
         WHEN pending_verdict IS NULL THEN 'not_replayed'
         WHEN pending_verdict = 'unknown' THEN 'unknown_verdict'
         WHEN logged_pending_action IS NULL THEN 'no_logged_verdict'
         WHEN NOT pending_agrees AND {pending_unsupplied} THEN 'policy_not_supplied'
         WHEN NOT pending_agrees THEN 'verdict_differs'
         WHEN NOT pending_same_decider AND {pending_unsupplied} THEN 'policy_not_supplied'
         WHEN NOT pending_same_decider THEN 'different_deciding_policy'
       END AS pending_disagreement
FROM compared"""


def info_view(files: FilesRef) -> str:
    return (
        "-- replay_info: the replay run these views show: when, flowstage and DuckDB versions, policy and inventory\n"
        "-- files with their SHA-256, policies per set, what promoting each staged object does, safety nets,\n"
        "-- key columns, rows and keys replayed.\n"
        f"SELECT * FROM read_parquet({files('run')})"
    )


def policies_view(files: FilesRef) -> str:
    return (
        "-- replay_policies: every policy of every evaluated set, in evaluation order (tier_position, position),\n"
        "-- with its flow-log ids (log_ids) and whether it is a safety net (an allow-everything policy).\n"
        f"SELECT * FROM read_parquet({files('policies')})"
    )


def rules_view(files: FilesRef) -> str:
    return (
        "-- replay_rules: every rule of every policy of every evaluated set (set_name, policy, policy_kind,\n"
        "-- direction, rule index as flow logs count it, action, where it was written).\n"
        f"SELECT * FROM read_parquet({files('rules')})"
    )


def all_views(files: FilesRef, key_columns: Sequence[str]) -> dict[str, str]:
    """Every view of a replay, in creation order (later views read earlier ones)."""
    return {
        "verdicts": verdicts_view(files, key_columns),
        "replay": replay_view(key_columns),
        "findings": findings_view(),
        "connections": connections_view(),
        "fidelity": fidelity_view(files),
        "replay_info": info_view(files),
        "replay_policies": policies_view(files),
        "replay_rules": rules_view(files),
    }
