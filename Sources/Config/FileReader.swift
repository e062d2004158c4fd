// Reads a configuration file with plain POSIX calls (no Foundation).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Larger files are refused: a configuration is a few kilobytes.
let maxConfigFileSize = 1 << 20

struct FileReadProblem: Error {
    var message: String
}

func readConfigFile(_ path: String) -> Result<[UInt8], FileReadProblem> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return .failure(FileReadProblem(message: errorText(errno))) }
    defer { close(fd) }

    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { buffer in
            read(fd, buffer.baseAddress, buffer.count)
        }
        if count < 0 {
            if errno == EINTR { continue }
            return .failure(FileReadProblem(message: errorText(errno)))
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
        if bytes.count > maxConfigFileSize {
            return .failure(FileReadProblem(message: "file is too large (more than \(maxConfigFileSize) bytes)"))
        }
    }
    return .success(bytes)
}

private func errorText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(cString: text)
}
