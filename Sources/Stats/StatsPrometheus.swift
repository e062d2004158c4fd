// Stats as Prometheus metrics: each counter name of a segment mapped to a metric
// family and labels, and the text exposition format (version 0.0.4) that
// `promtool check metrics` accepts.
//
// Names are split by their known suffixes (longest match first), never at the
// first dot: port names may themselves contain dots (`port.vm.1.rx_packets` is
// port "vm.1"). A name no rule knows still renders, as `sluice_unmapped_total`
// (or `sluice_unmapped` for a gauge) with the whole name in a `name` label, so
// the output stays valid whatever the daemon registers.

extension StatsFormat {
    /// How one counter name maps to a Prometheus sample.
    public struct PrometheusSeries: Equatable, Sendable {
        /// The metric name as written: counters end in `_total`, gauges do not.
        public var family: String
        /// The family's type: the counter's kind in the segment.
        public var kind: CounterKind
        /// The `# HELP` text of the family.
        public var help: String
        /// Labels other than `instance`, in output order.
        public var labels: [Label]

        public struct Label: Equatable, Sendable {
            public var name: String
            public var value: String

            public init(name: String, value: String) {
                self.name = name
                self.value = value
            }
        }
    }

    /// One known trailing part of a name: `suffix` → `sluice_<base>[_total]`.
    struct PrometheusRule: Sendable {
        var suffix: String
        var base: String
        var help: String
    }

    // The suffixes the daemon registers. Ports: PortCounters.names (the drop
    // reasons are rendered as one family) and VhostUserPort.controlCounterNames;
    // a test checks that each of those maps to a dedicated family.
    static let portRules: [PrometheusRule] = longestFirst([
        .init(suffix: "rx_packets", base: "port_rx_packets", help: "Frames sluice took from the port."),
        .init(suffix: "rx_bytes", base: "port_rx_bytes", help: "Bytes of the frames sluice took from the port."),
        .init(suffix: "tx_packets", base: "port_tx_packets", help: "Frames sluice gave to the port."),
        .init(suffix: "tx_bytes", base: "port_tx_bytes", help: "Bytes of the frames sluice gave to the port."),
        .init(suffix: "flood_packets", base: "port_flood_packets", help: "Frames from the port that a switch flooded."),
        .init(suffix: "connected", base: "port_connected", help: "1 while a vhost-user front-end is connected to the port."),
        .init(suffix: "vhost.connects", base: "port_vhost_connects", help: "vhost-user front-end connections of the port."),
        .init(suffix: "vhost.bad_message", base: "port_vhost_bad_messages",
              help: "Malformed vhost-user messages on the port (each dropped the connection)."),
        .init(suffix: "vhost.refused_message", base: "port_vhost_refused_messages",
              help: "Valid vhost-user messages the port refused."),
    ] + portDropReasons.map {
        .init(suffix: "drop." + $0, base: portDropBase, help: portDropHelp)
    })

    /// The drop reasons of PortCounters.names (`drop.<reason>`).
    static let portDropReasons = [
        "bad_desc", "no_rx_buffer", "link_down", "bad_length", "vlan", "mac_lock", "max_macs",
        "flood_limit", "monitor_tx", "mtu", "no_buffer",
    ]
    static let portDropBase = "port_drops"
    static let portDropHelp = "Frames dropped at the port, by reason."

    static let workerRules: [PrometheusRule] = longestFirst([
        .init(suffix: "loops", base: "worker_loops", help: "Poll loop turns of the worker."),
        .init(suffix: "busy_loops", base: "worker_busy_loops", help: "Poll loop turns that moved at least one packet."),
        .init(suffix: "busy_cycles", base: "worker_busy_cycles", help: "TSC cycles spent in loop turns that moved packets."),
        .init(suffix: "idle_cycles", base: "worker_idle_cycles", help: "TSC cycles spent in loop turns that moved nothing."),
        .init(suffix: "busy_packets", base: "worker_busy_packets", help: "Packets the worker moved."),
        .init(suffix: "cpu", base: "worker_cpu", help: "The CPU core the worker thread is pinned to."),
    ])

    static let queueRules: [PrometheusRule] = longestFirst([
        .init(suffix: "worker", base: "rxq_worker", help: "The worker that polls the receive queue."),
        .init(suffix: "busy_cycles", base: "rxq_busy_cycles",
              help: "TSC cycles the owning worker spent polling the receive queue (sampled)."),
        .init(suffix: "packets", base: "rxq_packets", help: "Packets taken from the receive queue."),
    ])

    static let switchRules: [PrometheusRule] = longestFirst([
        .init(suffix: "macs", base: "switch_macs", help: "MAC table entries of the switch."),
        .init(suffix: "learned", base: "switch_macs_learned", help: "Addresses the switch learned."),
        .init(suffix: "moved", base: "switch_macs_moved", help: "Learned addresses that moved to another port."),
        .init(suffix: "aged", base: "switch_macs_aged", help: "MAC table entries that aged out."),
        .init(suffix: "flushed", base: "switch_macs_flushed", help: "MAC table entries flushed with their port."),
        .init(suffix: "table_full", base: "switch_table_full",
              help: "Addresses not learned because the MAC table was full."),
    ])

    static let mempoolRules: [PrometheusRule] = longestFirst([
        .init(suffix: "in_use", base: "mempool_in_use", help: "Packet buffers handed out."),
        .init(suffix: "alloc_fail", base: "mempool_alloc_failures", help: "Packet buffer allocations that failed."),
    ])

    static let blkRules: [PrometheusRule] = longestFirst([
        .init(suffix: "reads", base: "blk_reads", help: "Read requests completed by the blk export."),
        .init(suffix: "writes", base: "blk_writes", help: "Write requests completed by the blk export."),
        .init(suffix: "flushes", base: "blk_flushes", help: "Flush requests completed by the blk export."),
        .init(suffix: "discards", base: "blk_discards", help: "Discard requests completed by the blk export."),
        .init(suffix: "write_zeroes", base: "blk_write_zeroes", help: "Write-zeroes requests completed by the blk export."),
        .init(suffix: "get_id", base: "blk_get_id", help: "GET_ID requests answered by the blk export."),
        .init(suffix: "read_bytes", base: "blk_read_bytes", help: "Bytes read by the blk export's guest."),
        .init(suffix: "write_bytes", base: "blk_write_bytes", help: "Bytes written by the blk export's guest."),
        .init(suffix: "errors.ioerr", base: "blk_errors_ioerr", help: "Requests completed with VIRTIO_BLK_S_IOERR."),
        .init(suffix: "errors.unsupp", base: "blk_errors_unsupp", help: "Requests completed with VIRTIO_BLK_S_UNSUPP."),
        .init(suffix: "drop.bad_chain", base: "blk_bad_chains", help: "Descriptor chains without a status byte to answer in."),
        .init(suffix: "inflight", base: "blk_inflight", help: "Requests with the backend now."),
        .init(suffix: "buffered_retries", base: "blk_buffered_retries",
              help: "Reads and writes O_DIRECT refused (alignment) that went through the page cache instead."),
        .init(suffix: "connected", base: "blk_connected", help: "1 while a front-end is connected to the blk socket."),
        .init(suffix: "vhost.bad_message", base: "blk_vhost_bad_messages", help: "Malformed vhost-user messages (connection dropped)."),
        .init(suffix: "vhost.refused_message", base: "blk_vhost_refused_messages", help: "vhost-user messages the device refused."),
        .init(suffix: "vhost.connects", base: "blk_vhost_connects", help: "Front-end connections accepted or made."),
    ] + LatencyHistogram.bucketNames.map {
        .init(suffix: $0, base: "blk_requests_by_latency", help: "Requests by latency (bucket below_us: less than that many µs; +Inf: the rest).")
    })

    /// `nvme.<controller>.qp<n>.<suffix>`: one NVMe I/O queue pair.
    static let nvmeQueueRules: [PrometheusRule] = longestFirst([
        .init(suffix: "submissions", base: "nvme_queue_submissions", help: "NVMe commands written to the I/O submission queue."),
        .init(suffix: "completions", base: "nvme_queue_completions", help: "NVMe completions reaped from the I/O completion queue."),
        .init(suffix: "doorbells", base: "nvme_queue_doorbells", help: "Doorbell writes (MMIO) for the queue pair."),
        .init(suffix: "timeouts", base: "nvme_queue_timeouts", help: "NVMe commands that did not complete within io-timeout-ms."),
        .init(suffix: "errors", base: "nvme_queue_errors", help: "NVMe commands completed with an error status."),
    ])
    /// `nvme.<controller>.<suffix>`: the controller's admin path.
    static let nvmeControllerRules: [PrometheusRule] = longestFirst([
        .init(suffix: "admin_commands", base: "nvme_admin_commands", help: "Admin commands sent to the NVMe controller."),
        .init(suffix: "admin_timeouts", base: "nvme_admin_timeouts", help: "Admin commands that timed out."),
        .init(suffix: "resets", base: "nvme_resets", help: "Controller resets after a fatal status."),
    ])

    static let unmappedBase = "unmapped"
    static let unmappedHelp = "A sluice counter without a dedicated metric; the name label is its name in the segment."

    private static func longestFirst(_ rules: [PrometheusRule]) -> [PrometheusRule] {
        rules.sorted { first, second in first.suffix.utf8.count > second.suffix.utf8.count }
    }

    // MARK: Mapping

    /// The series of counter `name` of kind `kind`:
    /// `port.<p>.<suffix>`, `port.<p>.drop.<reason>` → `sluice_port_…{port,reason}`,
    /// `worker.<n>.<suffix>` → `sluice_worker_…{worker}`,
    /// `rxq.<p>.<q>.<suffix>` → `sluice_rxq_…{port,queue}`,
    /// `switch.<s>.<suffix>`, `mempool.<m>.<suffix>` → `sluice_switch_…{switch}`, `sluice_mempool_…{mempool}`,
    /// anything else → `sluice_unmapped[_total]{name}`.
    public static func prometheusSeries(for name: String, kind: CounterKind) -> PrometheusSeries {
        func series(_ base: String, _ help: String, _ labels: [(String, String)]) -> PrometheusSeries {
            PrometheusSeries(
                family: "sluice_" + base + (kind == .counter ? "_total" : ""), kind: kind, help: help,
                labels: labels.map { PrometheusSeries.Label(name: $0.0, value: $0.1) })
        }
        if let (port, rule) = split(name, prefix: "port.", rules: portRules) {
            if rule.base == portDropBase {
                return series(rule.base, rule.help, [("port", port), ("reason", String(rule.suffix.dropFirst(5)))])
            }
            return series(rule.base, rule.help, [("port", port)])
        }
        if let (port, reason) = unknownDropReason(name) {
            return series(portDropBase, portDropHelp, [("port", port), ("reason", reason)])
        }
        if let (worker, rule) = split(name, prefix: "worker.", rules: workerRules), isDecimal(worker) {
            return series(rule.base, rule.help, [("worker", worker)])
        }
        if let (middle, rule) = split(name, prefix: "rxq.", rules: queueRules),
           let dot = middle.utf8.lastIndex(of: UInt8(ascii: ".")) {
            let port = String(middle[..<dot])
            let queue = String(middle[middle.index(after: dot)...])
            if !port.isEmpty, isDecimal(queue) {
                return series(rule.base, rule.help, [("port", port), ("queue", queue)])
            }
        }
        if let (bridge, rule) = split(name, prefix: "switch.", rules: switchRules) {
            return series(rule.base, rule.help, [("switch", bridge)])
        }
        if let (pool, rule) = split(name, prefix: "mempool.", rules: mempoolRules) {
            return series(rule.base, rule.help, [("mempool", pool)])
        }
        if let (blk, rule) = split(name, prefix: "blk.", rules: blkRules) {
            if let bound = LatencyHistogram.upperBound(rule.suffix) {
                return series(rule.base, rule.help, [("blk", blk), ("below_us", bound)])
            }
            return series(rule.base, rule.help, [("blk", blk)])
        }
        if let (middle, rule) = split(name, prefix: "nvme.", rules: nvmeQueueRules),
           let dot = middle.utf8.lastIndex(of: UInt8(ascii: ".")) {
            let controller = String(middle[..<dot])
            let qp = String(middle[middle.index(after: dot)...])
            if !controller.isEmpty, qp.hasPrefix("qp"), isDecimal(String(qp.dropFirst(2))) {
                return series(rule.base, rule.help, [("controller", controller), ("qp", String(qp.dropFirst(2)))])
            }
        }
        if let (controller, rule) = split(name, prefix: "nvme.", rules: nvmeControllerRules) {
            return series(rule.base, rule.help, [("controller", controller)])
        }
        return series(unmappedBase, unmappedHelp, [("name", name)])
    }

    /// `<prefix><middle>.<suffix>` with a non-empty middle, for the longest
    /// suffix of `rules` that fits.
    static func split(_ name: String, prefix: String, rules: [PrometheusRule]) -> (String, PrometheusRule)? {
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.utf8.dropFirst(prefix.utf8.count)
        for rule in rules {
            let tail = 1 + rule.suffix.utf8.count
            guard rest.count > tail else { continue }
            let cut = rest.index(rest.endIndex, offsetBy: -tail)
            if rest[cut] == UInt8(ascii: "."), rest[rest.index(after: cut)...].elementsEqual(rule.suffix.utf8) {
                return (String(decoding: rest[..<cut], as: UTF8.self), rule)
            }
        }
        return nil
    }

    /// `port.<p>.drop.<reason>` for a reason this version does not know yet:
    /// the reason is what follows the last ".drop." (reasons have no dots).
    static func unknownDropReason(_ name: String) -> (port: String, reason: String)? {
        guard name.hasPrefix("port.") else { return nil }
        let bytes = Array(name.utf8.dropFirst(5))
        let marker = Array(".drop.".utf8)
        guard bytes.count > marker.count + 1 else { return nil }
        var start = bytes.count - marker.count - 1
        while start >= 1 {
            if bytes[start..<(start + marker.count)].elementsEqual(marker) {
                let reason = bytes[(start + marker.count)...]
                guard reason.allSatisfy(isMetricNameByte) else { return nil }
                return (String(decoding: bytes[..<start], as: UTF8.self), String(decoding: reason, as: UTF8.self))
            }
            start -= 1
        }
        return nil
    }

    static func isDecimal(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 9 && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    static func isMetricNameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "_")
    }

    // MARK: Exposition

    /// The text exposition format of `snapshot`: `sluice_up`, the heartbeat age
    /// and start time, then every counter; each family once (`# HELP`, `# TYPE`,
    /// all its samples together), families in order of first appearance.
    /// Every sample carries `instance` (the snapshot's instance when nil).
    public static func prometheus(_ snapshot: StatsSnapshot, instance: String? = nil) -> String {
        let instance = instance ?? snapshot.instance
        var exposition = PrometheusExposition(instance: instance)
        exposition.add(upFamily, kind: .gauge, help: upHelp, labels: [], value: snapshot.isLive ? "1" : "0")
        exposition.add(
            "sluice_heartbeat_age_seconds", kind: .gauge, help: "Seconds since the daemon's last heartbeat.",
            labels: [], value: jsonNumber(snapshot.heartbeatAgeSeconds))
        if snapshot.startTimeNanoseconds > 0 {
            exposition.add(
                "sluice_start_time_seconds", kind: .gauge,
                help: "When the daemon created its stats segment, in seconds since the Unix epoch.",
                labels: [], value: jsonNumber(Double(snapshot.startTimeNanoseconds) / 1e9))
        }
        for entry in snapshot.entries {
            let series = prometheusSeries(for: entry.name, kind: entry.kind)
            exposition.add(
                series.family, kind: series.kind, help: series.help,
                labels: series.labels.map { ($0.name, $0.value) }, value: String(entry.value))
        }
        return exposition.text
    }

    /// The exposition when there is no segment to read: `sluice_up 0` only.
    public static func prometheusUnavailable(instance: String) -> String {
        var exposition = PrometheusExposition(instance: instance)
        exposition.add(upFamily, kind: .gauge, help: upHelp, labels: [], value: "0")
        return exposition.text
    }

    static let upFamily = "sluice_up"
    static let upHelp = "1 while the sluice instance is running (fresh heartbeat, process exists), else 0."

    static func escapeLabelValue(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    static func escapeHelp(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}

/// Families collected in order of first appearance, then written grouped.
struct PrometheusExposition {
    let instance: String
    private var order: [String] = []
    private var families: [String: (kind: CounterKind, help: String, samples: [String])] = [:]

    init(instance: String) {
        self.instance = instance
    }

    /// A sample of `family`. The first sample of a family fixes its type and help.
    mutating func add(_ family: String, kind: CounterKind, help: String, labels: [(String, String)], value: String) {
        var line = family + "{instance=\"" + StatsFormat.escapeLabelValue(instance) + "\""
        for (name, labelValue) in labels {
            line += "," + name + "=\"" + StatsFormat.escapeLabelValue(labelValue) + "\""
        }
        line += "} " + value
        if families[family] == nil {
            order.append(family)
            families[family] = (kind, help, [])
        }
        families[family]?.samples.append(line)
    }

    var text: String {
        var out = ""
        for family in order {
            guard let entry = families[family] else { continue }
            out += "# HELP " + family + " " + StatsFormat.escapeHelp(entry.help) + "\n"
            out += "# TYPE " + family + " " + (entry.kind == .gauge ? "gauge" : "counter") + "\n"
            for sample in entry.samples { out += sample + "\n" }
        }
        return out
    }
}
