//! The Ray tutorial's GPT-2 deployment on Serve:
//!
//! ```sh
//! cargo run --release -p serve --example serve_gpt2 -- --model-dir ~/models/gpt2
//! curl "http://127.0.0.1:8000/model?query=What's+the+meaning+of+life?"
//! ```

mod model;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut port) = (None, 8000u16);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--model-dir", Some(v)) => dir = Some(PathBuf::from(v)),
            ("--port", Some(v)) => match v.parse() {
                Ok(p) => port = p,
                Err(_) => return fail(&format!("--port {v}: expected a port number")),
            },
            (other, _) => {
                return fail(&format!(
                    "unknown argument {other}; usage: serve_gpt2 --model-dir DIR [--port 8000]"
                ));
            }
        }
    }
    let Some(dir) = dir else {
        return fail(&format!("--model-dir is required: {}", model::WHERE));
    };
    let gpt2 = match model::Gpt2::load(&dir) {
        Ok(m) => Arc::new(m),
        Err(e) => return fail(&e),
    };
    let options = serve::HttpOptions {
        port,
        ..serve::HttpOptions::default()
    };
    let server = match serve::start(options) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    if let Err(e) = server.run(model::deployment(gpt2).num_cpus(0.0)) {
        return fail(&e.to_string());
    }
    println!(
        "GPT-2 from {} at http://{}/model?query=...; Ctrl-C stops.",
        dir.display(),
        server.address()
    );
    server.wait_for_signal();
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("serve_gpt2: {message}");
    ExitCode::from(2)
}
