//! Compiles `kitchen/v1/*.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["kitchen/v1/order_event.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let file_descriptors = protox::compile(protos, ["."])?;
    prost_build::Config::new().compile_fds(file_descriptors)?;
    Ok(())
}
