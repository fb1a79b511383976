/// Errors starting, stopping or inspecting the embedded PostgreSQL cluster. Each says what to do.
public enum ClusterError: Error, CustomStringConvertible, Equatable {
    case binariesNotFound(searched: [String])
    case commandFailed(command: String, status: Int32, output: String)
    case cannotCreateUser(name: String, output: String)
    /// As root the cluster runs as an unprivileged user, who must be able to reach the data dir.
    case dataDirUnreachable(path: String, blockedAt: String)
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .binariesNotFound(let searched):
            return "PostgreSQL server binaries (initdb, pg_ctl) not found in \(searched.joined(separator: ", ")); "
                + "hint: install the `postgresql` package (scripts/install-deps.sh) or pass --database-url"
        case let .commandFailed(command, status, output):
            return "`\(command)` exited with status \(status): \(output.suffix(2000))"
        case let .cannotCreateUser(name, output):
            return "could not create the system user '\(name)' that runs PostgreSQL when lora runs as root: \(output)"
        case let .dataDirUnreachable(path, blockedAt):
            return "the database directory \(path) is not reachable by the unprivileged PostgreSQL user: "
                + "\(blockedAt) is not searchable by others; hint: choose a --data-dir outside root's home, "
                + "e.g. /var/lib/lora (the default for root)"
        case let .io(path, reason):
            return "\(path): \(reason)"
        }
    }
}

/// What `lora db status` reports.
public struct ClusterStatus: Sendable, Equatable, Encodable {
    public let running: Bool
    public let initialized: Bool
    public let pid: Int?
    public let dataDirectory: String
    public let socketDirectory: String
    /// The OS user the server runs as.
    public let osUser: String

    enum CodingKeys: String, CodingKey {
        case running, initialized, pid
        case dataDirectory = "data_directory"
        case socketDirectory = "socket_directory"
        case osUser = "os_user"
    }
}
