// `provision init` embeds roles/ (and the example app its example_release role links to)
// with include_dir, which cannot tell cargo to rebuild when they change on stable Rust.
fn main() {
    println!("cargo:rerun-if-changed=roles");
    println!("cargo:rerun-if-changed=examples");
    println!("cargo:rerun-if-changed=inventories");
}
