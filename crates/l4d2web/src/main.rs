//! `left4me`: the web app and its admin CLI.
fn main() -> std::process::ExitCode {
    l4d2web::cli::main()
}
