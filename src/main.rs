fn main() {
    std::process::exit(provision::cli::main());
}
