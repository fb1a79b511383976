import ArgumentParser
import Quantization

// Async at the root so `lora serve` can run the HTTP server; every other command stays synchronous.
@main
struct Lora: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora",
        abstract: "LoRA/QLoRA fine-tuning, registry and serving on CPU.",
        subcommands: [
            GenerateCommand.self,
            PullCommand.self,
            ScoreCommand.self,
            TrainCommand.self,
            InfoCommand.self,
            QuantizeCommand.self,
            MergeCommand.self,
            // Registry (issue 7).
            ModelsCommand.self, ImportCommand.self, TasksCommand.self, VersionsCommand.self, ExportCommand.self,
            ResolveCommand.self, PromoteCommand.self, RollbackCommand.self, HistoryCommand.self, ArchiveCommand.self,
            TagCommand.self, DbCommand.self,
            // Job daemon (issue 8).
            JobsCommand.self, WorkerCommand.self, JobRunCommand.self,
            // Serving (issue 13).
            ServeCommand.self,
            // The fine-tuning API (issue 14).
            KeysCommand.self, TuneCommand.self, ChatCommand.self,
            // Speed figures (issue 15).
            BenchCommand.self,
        ]
    )

    /// ArgumentParser's entry point, with Swift's and Foundation's raw errors reworded (`UserFacingError`).
    /// Async, as AsyncParsableCommand's own: `lora serve` runs asynchronously, every other verb synchronously.
    static func main() async {
        do {
            if let bad = QuantizedKernelDispatch.decodeKnobsError() { throw ValidationError(bad) }
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: UserFacingError.reworded(error))
        }
    }
}
