//! Compiles `proto/` with protox (pure Rust, so no system `protoc` is needed) into the tonic
//! services and clients (the chatbot API and the admin API), plus one descriptor set for reflection.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let include = "../proto";
    let files = ["chatbot/v1/chatbot.proto", "chatbot/admin/v1/admin.proto"];
    println!("cargo:rerun-if-changed={include}");

    let descriptors = protox::compile(files, [include])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("chatbot_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
