// Rendering snapshots as text: plain columns, columns with rates and JSON (the
// Prometheus format is in StatsPrometheus.swift). Pure functions, used by sluice-stat.

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
    /// `{"instance":..,["time":..,]"pid":..,"live":..,"epoch":..,"heartbeat_age_s":..,"counters":{..}}`.
    /// `time` (a timestamp text, e.g. ISO-8601) is included when given.
    public static func json(_ snapshot: StatsSnapshot, instance: String, time: String? = nil) -> String {
        var out = "{\"instance\":" + jsonString(instance)
        if let time { out += ",\"time\":" + jsonString(time) }
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
