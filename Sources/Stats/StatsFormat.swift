// Rendering snapshots as text: plain columns, columns with rates, JSON and the
// Prometheus text exposition format. Pure functions, used by sluice-stat.

public enum StatsFormat {
    // MARK: Plain text

    /// One `name value` line per counter, in directory order, names padded to a column.
    public static func text(_ snapshot: StatsSnapshot) -> String {
        let width = snapshot.entries.map(\.name.utf8.count).max() ?? 0
        var out = ""
        for entry in snapshot.entries {
            out += pad(entry.name, to: width) + " " + String(entry.value) + "\n"
        }
        return out
    }

    /// `name value rate/s` lines. The rate is the counter's increase since
    /// `previous` divided by `elapsedSeconds`; "-" for gauges, for names new
    /// since `previous`, for counters that went backwards (daemon restart) and
    /// when there is no previous sample.
    public static func textWithRates(
        _ snapshot: StatsSnapshot, previous: StatsSnapshot?, elapsedSeconds: Double
    ) -> String {
        var before: [String: UInt64] = [:]
        for entry in previous?.entries ?? [] { before[entry.name] = entry.value }
        let width = snapshot.entries.map(\.name.utf8.count).max() ?? 0
        let values = snapshot.entries.map { String($0.value) }
        let valueWidth = values.map(\.utf8.count).max() ?? 0
        var out = ""
        for (index, entry) in snapshot.entries.enumerated() {
            var rate = "-"
            if entry.kind == .counter, elapsedSeconds > 0, let old = before[entry.name], entry.value >= old {
                rate = formatRate(Double(entry.value - old) / elapsedSeconds) + "/s"
            }
            out += pad(entry.name, to: width) + " " + padLeft(values[index], to: valueWidth) + " " + rate + "\n"
        }
        return out
    }

    // MARK: JSON

    /// One JSON object on one line:
    /// `{"instance":..,"pid":..,"live":..,"epoch":..,"heartbeat_age_s":..,"counters":{..}}`.
    public static func json(_ snapshot: StatsSnapshot, instance: String) -> String {
        var out = "{\"instance\":" + jsonString(instance)
        out += ",\"pid\":" + String(snapshot.pid)
        out += ",\"live\":" + (snapshot.isLive ? "true" : "false")
        out += ",\"epoch\":" + String(snapshot.epoch)
        out += ",\"heartbeat_age_s\":" + jsonNumber(snapshot.heartbeatAgeSeconds)
        out += ",\"counters\":{"
        for (index, entry) in snapshot.entries.enumerated() {
            if index > 0 { out += "," }
            out += jsonString(entry.name) + ":" + String(entry.value)
        }
        out += "}}"
        return out
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Milliseconds precision; never "inf"/"nan" (not JSON).
    static func jsonNumber(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let rounded = (value * 1000).rounded() / 1000
        if rounded == rounded.rounded(), abs(rounded) < 1e15 { return String(Int64(rounded)) }
        return String(rounded)
    }

    // MARK: Prometheus

    /// How a counter name maps to a Prometheus series.
    public struct PrometheusSeries: Equatable, Sendable {
        public var family: String
        public var labels: [Label]

        public struct Label: Equatable, Sendable {
            public var name: String
            public var value: String
        }
    }

    /// `worker.<n>.<m>` → `sluice_worker_<m>{worker="<n>"}`,
    /// `port.<p>.drop.<r>` → `sluice_port_drop_packets{port="<p>",reason="<r>"}`,
    /// `port.<p>.<m>` → `sluice_port_<m>{port="<p>"}`,
    /// `mempool.<p>.<m>` → `sluice_mempool_<m>{mempool="<p>"}`,
    /// anything else → `sluice_<name, non-alphanumerics as _>`.
    /// The middle part may itself contain dots (`port.vm1.eth0.rx_packets`).
    public static func prometheusSeries(for name: String) -> PrometheusSeries {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        func middle(_ range: Range<Int>) -> String { parts[range].joined(separator: ".") }
        func labelled(_ family: String, _ labels: [(String, String)]) -> PrometheusSeries {
            PrometheusSeries(
                family: "sluice_" + sanitize(family),
                labels: labels.map { PrometheusSeries.Label(name: $0.0, value: $0.1) })
        }
        let head = parts.first ?? ""
        let count = parts.count
        if head == "port", count >= 4, parts[count - 2] == "drop", !parts[count - 1].isEmpty {
            return labelled("port_drop_packets", [("port", middle(1..<(count - 2))), ("reason", parts[count - 1])])
        }
        if ["worker", "port", "mempool"].contains(head), count >= 3, !parts[count - 1].isEmpty {
            return labelled(head + "_" + parts[count - 1], [(head, middle(1..<(count - 1)))])
        }
        return labelled(name, [])
    }

    /// Text exposition format: one `# TYPE` line per family, then its samples,
    /// families in order of first appearance; and `sluice_up` (1 when live).
    public static func prometheus(_ snapshot: StatsSnapshot) -> String {
        var order: [String] = []
        var kinds: [String: CounterKind] = [:]
        var samples: [String: [String]] = [:]
        for entry in snapshot.entries {
            let series = prometheusSeries(for: entry.name)
            if kinds[series.family] == nil {
                order.append(series.family)
                kinds[series.family] = entry.kind
            }
            var line = series.family
            if !series.labels.isEmpty {
                let labels = series.labels.map { "\($0.name)=\"\(escapeLabelValue($0.value))\"" }
                line += "{" + labels.joined(separator: ",") + "}"
            }
            samples[series.family, default: []].append(line + " " + String(entry.value))
        }
        var out = "# TYPE sluice_up gauge\nsluice_up " + (snapshot.isLive ? "1" : "0") + "\n"
        for family in order {
            out += "# TYPE \(family) \(kinds[family] == .gauge ? "gauge" : "counter")\n"
            for line in samples[family] ?? [] { out += line + "\n" }
        }
        return out
    }

    /// Metric-name characters: letters, digits and '_'; anything else becomes '_'.
    static func sanitize(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
            let v = scalar.value
            let ok = (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
            return ok ? scalar : "_"
        }))
    }

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

    // MARK: Helpers

    static func pad(_ text: String, to width: Int) -> String {
        let missing = width - text.utf8.count
        return missing > 0 ? text + String(repeating: " ", count: missing) : text
    }

    static func padLeft(_ text: String, to width: Int) -> String {
        let missing = width - text.utf8.count
        return missing > 0 ? String(repeating: " ", count: missing) + text : text
    }

    /// One decimal below 1000, whole numbers above.
    static func formatRate(_ rate: Double) -> String {
        guard rate.isFinite, rate >= 0 else { return "0" }
        if rate >= 1000 { return rate < 1e18 ? String(UInt64(rate.rounded())) : String(rate) }
        let tenths = UInt64((rate * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
