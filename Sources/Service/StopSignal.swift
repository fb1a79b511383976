import Foundation

/// SIGINT / SIGTERM as a request to stop at the next safe point (after a micro-batch), so a
/// training run can checkpoint and exit cleanly instead of dying mid-write.
public enum StopSignal {
    nonisolated(unsafe) private static var received: Int32 = 0

    public static func install() {
        signal(SIGINT) { sig in StopSignal.received = sig }
        signal(SIGTERM) { sig in StopSignal.received = sig }
    }

    /// The signal received, or 0.
    public static var receivedSignal: Int32 { received }
    public static var requested: Bool { received != 0 }
}
