import Config
import Logging
import Platform
import Ports

/// Start-up and SIGHUP share one path: `apply` takes the running graph (empty at
/// start) to what a config says. Ports whose section is unchanged, and elements whose
/// section and ports are unchanged, are left alone — their guests stay connected and
/// their frames keep flowing (the workers pause for a moment, they are not rebuilt).
/// Everything else is stopped, closed, created and built again.
extension Dataplane {
    /// SIGHUP: read the file again; if it is valid and can run here, apply the difference.
    /// Otherwise log every error (FILE:LINE:) and keep the running configuration.
    func reload() {
        do { try SdNotify.reloading(status: "reloading \(config.file)") } catch { logger.warning("sd_notify RELOADING: \(error.reason)") }
        reloadFile()
        do { try SdNotify.ready(status: "\(workers.count) worker(s) on core(s) \(options.cores.map(String.init).joined(separator: ",")), \(ports.count) port(s)") } catch {
            logger.warning("sd_notify READY: \(error.reason)")
        }
    }

    private func reloadFile() {
        let file = config.file
        let new: SluiceConfig
        do { new = try SluiceConfig.load(path: file) } catch {
            for d in error.diagnostics { logger.error("\(d.description)") }
            logger.error("reload refused: \(file) has \(error.diagnostics.count) error(s); the running configuration stays")
            return
        }
        for w in new.warnings { logger.warning("\(w.description)") }
        var newOptions: RuntimeOptions
        switch RuntimeOptions.resolve(config: new, overrides) {
        case .success(let o): newOptions = o
        case .failure(let e):
            logger.error("\(e.description)")
            logger.error("reload refused; the running configuration stays")
            return
        }
        if newOptions.instance != options.instance {
            logger.warning("\(file): instance '\(newOptions.instance)': the instance name changes only at a restart; keeping '\(options.instance)'")
            newOptions.instance = options.instance
        }
        if newOptions.hugepages != options.hugepages {
            logger.warning("\(file): hugepages: the packet memory is chosen only at a restart; keeping \(options.hugepages)")
            newOptions.hugepages = options.hugepages
        }
        var problems = Preflight.problems(new, options: newOptions)
        if newOptions.cores.count > workerCapacity {
            problems.append("\(file): \(newOptions.cores.count) workers, but this process has room for \(workerCapacity) (restart to grow beyond)")
        }
        if !problems.isEmpty {
            for p in problems { logger.error("\(p)") }
            logger.error("reload refused; the running configuration stays")
            return
        }
        do { try apply(new, options: newOptions, strict: false) } catch {
            logger.error("reload: \(error.description)")
        }
    }

    /// Take the running graph to `new`. `strict` (start-up): the first error is thrown.
    /// Otherwise (reload): a port or element that cannot start is logged and left out,
    /// and the rest is applied.
    func apply(_ new: SluiceConfig, options newOptions: RuntimeOptions, strict: Bool) throws(EngineError) {
        // Which ports stay, which go (removed, or changed and so restarted).
        var kept: [String: any DataplanePort] = [:]
        for p in ports {
            if let pc = new.port(named: p.name), Self.sameIgnoringLines(p.config, pc) { kept[p.name] = p }
        }
        let leaving = ports.filter { kept[$0.name] == nil }
        let leavingNames = Set(leaving.map(\.name))
        let workersChange = newOptions.cores != options.cores || newOptions.poll != options.poll

        // Which elements stop: removed, changed, on a leaving port, or all when the workers change.
        var specs: [(ElementSpec, any ElementBuilder)] = []
        for b in Self.builders { for s in b.specs(new) { specs.append((s, b)) } }
        var specByKey: [String: ElementSpec] = [:]
        for (s, _) in specs { specByKey[s.key] = s }
        let stopping = elements.filter { e in
            guard !workersChange, let s = specByKey[e.spec.key] else { return true }
            return s.ports != e.spec.ports || s.fingerprint != e.spec.fingerprint
                || e.spec.ports.contains(where: leavingNames.contains)
        }
        if !stopping.isEmpty {
            quiesce { for e in stopping { stopElement(e) } }
            let ids = Set(stopping.map(\.id))
            elements.removeAll { ids.contains($0.id) }
        }
        // Queue statistics of every port whose element stopped start again from zero.
        var retired: [String] = []   // retired once no thread writes them
        for e in stopping {
            for name in e.spec.ports { retired += rxqNames.removeValue(forKey: name).map(Array.init) ?? [] }
            if specByKey[e.spec.key] == nil { retired += e.running.counterNames }
        }
        for p in leaving {
            p.close(epoll: controlEpoll)
            if new.port(named: p.name) == nil { retired += counterNames(ofPort: p.name) }
        }

        if workersChange {
            for w in workers { w.stop() }
            let old = workers.count
            workers.removeAll()
            if newOptions.cores.count < old {
                for n in newOptions.cores.count..<old {
                    retired += ["loops", "busy_cycles", "idle_cycles", "busy_packets", "busy_loops", "cpu"].map { "worker.\(n).\($0)" }
                }
            }
            try startWorkers(newOptions)
        }
        // Before anything registers the names again.
        stats.retire(names: retired)
        config = new
        options = newOptions

        // Ports: kept ones as they are, the others created and opened.
        var errors: [EngineError] = []
        var next: [any DataplanePort] = []
        var started: [String] = []
        for pc in new.ports {
            if let p = kept[pc.name] { next.append(p); continue }
            do {
                let p = try makePort(pc)
                try p.open(epoll: controlEpoll, logger: logger)
                next.append(p)
                started.append(pc.name)
            } catch {
                if strict { ports = next; throw error }
                errors.append(error)
            }
        }
        ports = next

        // Elements not running: new ones and the ones stopped above.
        let running = Set(elements.map(\.spec.key))
        var built: [String] = []
        quiesce {
            for (s, b) in specs where !running.contains(s.key) {
                if strict && !errors.isEmpty { return }
                do throws(EngineError) {
                    try startElement(s, builder: b)
                    built.append(s.key)
                } catch {
                    errors.append(error)
                }
            }
        }
        closeUnusedBlkExports()
        if strict, let e = errors.first { throw e }
        for e in errors { logger.error("\(e.description)") }
        // Ports on no element still count, so sluice-stat shows them.
        let onElements = Set(elements.flatMap(\.spec.ports))
        for p in ports where !onElements.contains(p.name) { _ = try? portCounters(p.name, slot: 0) }

        if workersChange && !strict {
            for w in workers {
                do { try w.start() } catch { logger.error("worker \(w.id): \(error)") }
            }
        }
        if !strict {
            let removedPorts = leaving.filter { new.port(named: $0.name) == nil }.map(\.name)
            let removedElements = stopping.filter { specByKey[$0.spec.key] == nil }.map(\.spec.key)
            logger.info("reloaded \(config.file): ports started [\(started.joined(separator: ", "))], removed [\(removedPorts.joined(separator: ", "))], unchanged \(kept.count); elements built [\(built.joined(separator: ", "))], removed [\(removedElements.joined(separator: ", "))]\(workersChange ? "; workers now on core(s) \(newOptions.cores.map(String.init).joined(separator: ",")), \(newOptions.idlePolicy)" : "")\(errors.isEmpty ? "" : "; \(errors.count) error(s)")")
        }
    }

    /// Two port sections that would run the same (only where they sit in the file differs).
    static func sameIgnoringLines(_ a: PortConfig, _ b: PortConfig) -> Bool {
        var a = a, b = b
        a.line = 0
        b.line = 0
        return a == b
    }
}
