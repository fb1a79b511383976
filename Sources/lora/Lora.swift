import ArgumentParser

@main
struct Lora: ParsableCommand {
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
        ]
    )
}
