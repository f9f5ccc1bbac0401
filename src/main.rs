fn main() -> std::process::ExitCode {
    kyma_certd::app::main()
}
