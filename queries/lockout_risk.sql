-- Question: would promotion cut anything that keeps the cluster alive — node access, DNS, the API server,
-- cluster components, host endpoints?
-- Every client→server pair that is allowed today and would be denied after promotion (or whose verdict becomes
-- unknown with promotion) and touches one of the facts below. Each row says why it is risky. Ranked: certain
-- denies first, then by flows, then bytes.
--
-- The facts are the lists in the first CTEs; edit them to match the cluster (e.g. FailsafeInboundHostPorts /
-- FailsafeOutboundHostPorts if they were changed from Calico's defaults, calico-semantics §7).
-- Counting: a connection reported by both ends counts once (the larger of the two reporters' totals), and copies of
-- a split record count once. A record without a connection count (a Whisker download) counts as one flow.
--
-- Columns:
--   rank              1 = the most important risk
--   source_namespace  client namespace; NULL for host endpoints, global network sets and external networks
--   source_workload   the client: pod name prefix without the ReplicaSet hash or StatefulSet ordinal, host endpoint
--                     or node, `pub` / `pvt`
--   dest_namespace    server namespace (same conventions)
--   dest_workload     the server
--   dest_port         destination port after DNAT; NULL when not logged
--   proto             L4 protocol
--   why               every reason this traffic is critical, separated by `; `
--   certainty         `deny` (replay says it would be denied) or `unknown` (replay could not decide; see
--                     unknown_verdicts for what would resolve it)
--   flows             connections affected, summed over logging windows (`num_flows`)
--   bytes             bytes of those connections, both directions
--   first_seen        start of the first logging window with such traffic
--   last_seen         end of the last one
--   denied_by         the deciding policy and rule after promotion (`policy rule N`, `policy end of tier`), or the
--                     reason code of an unknown verdict; several are separated by `; `
-- Parameter: $top — keep the first N rows (NULL keeps all).
-- Show: rank, source_namespace, source_workload, dest_namespace, dest_workload, dest_port, proto, certainty, flows, why, denied_by
WITH
-- Calico's default failsafe ports (calico-semantics §7). Felix accepts them on host endpoints before any policy;
-- workload endpoints have no failsafes, so a deny there is enforced.
failsafe_ports (proto, port, purpose, lists) AS (
    VALUES
        ('tcp', 22, 'SSH', 'inbound'),
        ('udp', 53, 'DNS', 'outbound'),
        ('udp', 67, 'DHCP', 'outbound'),
        ('udp', 68, 'DHCP', 'inbound'),
        ('tcp', 179, 'BGP', 'inbound and outbound'),
        ('tcp', 2379, 'etcd', 'inbound and outbound'),
        ('tcp', 2380, 'etcd', 'inbound and outbound'),
        ('tcp', 5473, 'Typha', 'inbound and outbound'),
        ('tcp', 6443, 'Kubernetes API server', 'inbound and outbound'),
        ('tcp', 6666, 'etcd (legacy)', 'inbound and outbound'),
        ('tcp', 6667, 'etcd (legacy)', 'inbound and outbound')
),
-- Cluster DNS: the port, and the Services and workloads that serve it.
dns_ports (proto, port) AS (
    VALUES ('udp', 53), ('tcp', 53)
),
dns_services (namespace, name) AS (
    VALUES ('kube-system', 'kube-dns'), ('kube-system', 'coredns'), ('openshift-dns', 'dns-default')
),
dns_workloads (namespace, workload) AS (
    VALUES ('kube-system', 'coredns'), ('kube-system', 'kube-dns'), ('openshift-dns', 'dns-default')
),
-- The Kubernetes API server: its Service, and its port on the host endpoints that run it.
api_services (namespace, name) AS (
    VALUES ('default', 'kubernetes')
),
api_ports (proto, port) AS (
    VALUES ('tcp', 6443)
),
-- Namespaces that hold cluster components (LIKE patterns).
system_namespaces (pattern, purpose) AS (
    VALUES
        ('kube-system', 'Kubernetes system components'),
        ('calico-system', 'Calico components'),
        ('calico-apiserver', 'Calico API server'),
        ('tigera-%', 'Tigera operator and components')
),
at_risk AS (
    SELECT DISTINCT
        reporter, host, source_file, start_time, end_time,
        source_type, source_namespace, source_name, source_name_aggr, source_ip, source_port,
        dest_type, dest_namespace, dest_name, dest_name_aggr, dest_ip, dest_port, proto,
        dest_service_namespace, dest_service_name,
        num_flows, bytes_in, bytes_out, packets_in, packets_out,
        proposed_verdict, proposed_policy, proposed_rule, proposed_reason
    FROM findings
    WHERE action = 'allow'
      AND (proposed_verdict = 'deny'
        -- An unknown verdict is a risk when promotion brings the doubt: a row replay cannot judge under either
        -- set (no endpoint type, say) is not made riskier by promoting.
        OR (proposed_verdict = 'unknown' AND (current_verdict <> 'unknown' OR proposed_staged)))
),
named AS (
    SELECT
        CASE WHEN reporter LIKE 'src%' THEN 'src' WHEN reporter LIKE 'dst%' THEN 'dst' ELSE 'fwd' END AS side,
        source_type, source_namespace,
        CASE WHEN source_type = 'wep' OR (source_type IS NULL AND source_namespace IS NOT NULL)
            THEN regexp_replace(COALESCE(source_name_aggr, source_name), '(-[bcdfghjklmnpqrstvwxz2456789]{5,10})?-[*]$|-[0-9]+$', '')
            ELSE COALESCE(source_name_aggr, source_name, source_ip) END AS source_workload,
        dest_type, dest_namespace,
        CASE WHEN dest_type = 'wep' OR (dest_type IS NULL AND dest_namespace IS NOT NULL)
            THEN regexp_replace(COALESCE(dest_name_aggr, dest_name), '(-[bcdfghjklmnpqrstvwxz2456789]{5,10})?-[*]$|-[0-9]+$', '')
            ELSE COALESCE(dest_name_aggr, dest_name, dest_ip) END AS dest_workload,
        dest_port, proto, dest_service_namespace, dest_service_name, start_time, end_time,
        COALESCE(num_flows, 1) AS flows,
        COALESCE(bytes_in, 0) + COALESCE(bytes_out, 0) AS bytes,
        CASE WHEN proposed_verdict = 'deny' THEN 1 ELSE 0 END AS denied,
        CASE WHEN proposed_verdict = 'deny'
            THEN proposed_policy || CASE WHEN proposed_rule = -1 THEN ' end of tier'
                ELSE ' rule ' || CAST(proposed_rule AS VARCHAR) END
            ELSE 'unknown: ' || COALESCE(proposed_reason, 'no reason given') END AS decider
    FROM at_risk
),
per_reporter AS (
    SELECT
        source_type, source_namespace, source_workload, dest_type, dest_namespace, dest_workload, dest_port, proto,
        side,
        sum(flows) AS flows, sum(bytes) AS bytes, min(start_time) AS first_seen, max(end_time) AS last_seen,
        max(denied) AS denied,
        max(dest_service_namespace) AS dest_service_namespace,
        max(dest_service_name) AS dest_service_name
    FROM named
    GROUP BY source_type, source_namespace, source_workload, dest_type, dest_namespace, dest_workload, dest_port,
        proto, side
),
pairs AS (
    SELECT
        source_type, source_namespace, source_workload, dest_type, dest_namespace, dest_workload, dest_port, proto,
        max(flows) AS flows, max(bytes) AS bytes, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
        max(denied) AS denied,
        max(dest_service_namespace) AS dest_service_namespace,
        max(dest_service_name) AS dest_service_name
    FROM per_reporter
    GROUP BY source_type, source_namespace, source_workload, dest_type, dest_namespace, dest_workload, dest_port,
        proto
),
reasons AS (
    SELECT p.*, f.proto || ':' || CAST(f.port AS VARCHAR) || ' is a Calico failsafe port (' || f.purpose || ', '
        || f.lists || ')' || CASE WHEN p.source_type = 'hep' OR p.dest_type = 'hep'
            THEN '' ELSE ', but failsafes cover host endpoints only' END AS why
    FROM pairs AS p JOIN failsafe_ports AS f ON p.proto = f.proto AND p.dest_port = f.port
    UNION ALL
    SELECT p.*, 'DNS: ' || p.proto || ':' || CAST(p.dest_port AS VARCHAR) AS why
    FROM pairs AS p JOIN dns_ports AS d ON p.proto = d.proto AND p.dest_port = d.port
    UNION ALL
    SELECT p.*, 'DNS: service ' || s.namespace || '/' || s.name AS why
    FROM pairs AS p JOIN dns_services AS s
        ON p.dest_service_namespace = s.namespace AND p.dest_service_name = s.name
    UNION ALL
    SELECT p.*, 'DNS: server ' || w.namespace || '/' || w.workload AS why
    FROM pairs AS p JOIN dns_workloads AS w ON p.dest_namespace = w.namespace AND p.dest_workload = w.workload
    UNION ALL
    SELECT p.*, 'Kubernetes API server: service ' || s.namespace || '/' || s.name AS why
    FROM pairs AS p JOIN api_services AS s
        ON p.dest_service_namespace = s.namespace AND p.dest_service_name = s.name
    UNION ALL
    SELECT p.*, 'Kubernetes API server port ' || a.proto || ':' || CAST(a.port AS VARCHAR) AS why
    FROM pairs AS p JOIN api_ports AS a ON p.proto = a.proto AND p.dest_port = a.port
    UNION ALL
    SELECT p.*, 'source in ' || p.source_namespace || ' (' || n.purpose || ')' AS why
    FROM pairs AS p JOIN system_namespaces AS n ON p.source_namespace LIKE n.pattern
    UNION ALL
    SELECT p.*, 'destination in ' || p.dest_namespace || ' (' || n.purpose || ')' AS why
    FROM pairs AS p JOIN system_namespaces AS n ON p.dest_namespace LIKE n.pattern
    UNION ALL
    SELECT p.*, 'source is a host endpoint (node ' || p.source_workload || ')' AS why
    FROM pairs AS p WHERE p.source_type = 'hep'
    UNION ALL
    SELECT p.*, 'destination is a host endpoint (node ' || p.dest_workload || ')' AS why
    FROM pairs AS p WHERE p.dest_type = 'hep'
),
risks AS (
    SELECT
        source_type, source_namespace, source_workload, dest_type, dest_namespace, dest_workload, dest_port, proto,
        string_agg(DISTINCT why, '; ' ORDER BY why) AS why,
        max(denied) AS denied, max(flows) AS flows, max(bytes) AS bytes,
        min(first_seen) AS first_seen, max(last_seen) AS last_seen
    FROM reasons
    GROUP BY source_type, source_namespace, source_workload, dest_type, dest_namespace, dest_workload, dest_port,
        proto
),
deciders AS (
    SELECT
        source_type, source_namespace, source_workload, dest_type, dest_namespace, dest_workload, dest_port, proto,
        string_agg(DISTINCT decider, '; ' ORDER BY decider) AS denied_by
    FROM named
    GROUP BY source_type, source_namespace, source_workload, dest_type, dest_namespace, dest_workload, dest_port,
        proto
),
ranked AS (
    SELECT
        row_number() OVER (
            ORDER BY r.denied DESC, r.flows DESC, r.bytes DESC, r.dest_namespace, r.dest_workload, r.dest_port,
                r.proto, r.source_namespace, r.source_workload
        ) AS rank,
        r.source_namespace, r.source_workload, r.dest_namespace, r.dest_workload, r.dest_port, r.proto,
        r.why,
        CASE WHEN r.denied = 1 THEN 'deny' ELSE 'unknown' END AS certainty,
        r.flows, r.bytes, r.first_seen, r.last_seen,
        d.denied_by
    FROM risks AS r
    JOIN deciders AS d
        ON d.source_type IS NOT DISTINCT FROM r.source_type
        AND d.source_namespace IS NOT DISTINCT FROM r.source_namespace
        AND d.source_workload IS NOT DISTINCT FROM r.source_workload
        AND d.dest_type IS NOT DISTINCT FROM r.dest_type
        AND d.dest_namespace IS NOT DISTINCT FROM r.dest_namespace
        AND d.dest_workload IS NOT DISTINCT FROM r.dest_workload
        AND d.dest_port IS NOT DISTINCT FROM r.dest_port
        AND d.proto IS NOT DISTINCT FROM r.proto
)
SELECT *
FROM ranked
WHERE $top IS NULL OR rank <= $top
ORDER BY rank
