//! `ferrolb-test-apiserver`: the in-memory test API server as a process, for the lab.

fn main() -> std::process::ExitCode {
    ferrolb_e2e_apiserver::cli::main()
}
