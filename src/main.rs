fn main() {
    std::process::exit(gopxe::cli::main());
}
