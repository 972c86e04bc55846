//! The tutorial's GPT-2 deployment on a tiny GPT-2 (same architecture, seeded random weights
//! written here, a byte-level BPE tokenizer of 257 tokens): the real loading, tokenising and
//! greedy generation path answers over HTTP, the same text every time.

#[path = "../examples/serve_gpt2/model.rs"]
mod model;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use candle_core::{Device, Tensor};
use serde_json::{Value, json};

/// GPT-2's map of bytes to printable characters (its byte-level alphabet).
fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = ('!' as u32..='~' as u32).collect();
    printable.extend('¡' as u32..='¬' as u32);
    printable.extend('®' as u32..='ÿ' as u32);
    let mut extra = 0;
    (0..256u32)
        .map(|b| {
            if printable.contains(&b) {
                char::from_u32(b).unwrap()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap()
            }
        })
        .collect()
}

/// Writes a tiny GPT-2 (2 layers, 16 wide, 2 heads, 64 positions) into `dir`.
fn write_tiny_gpt2(dir: &Path) {
    let (c, layers, positions, vocab) = (16usize, 2usize, 64usize, 257usize);
    std::fs::write(
        dir.join("config.json"),
        json!({"n_embd": c, "n_head": 2, "n_layer": layers, "n_positions": positions,
               "vocab_size": vocab, "layer_norm_epsilon": 1e-5, "model_type": "gpt2"})
        .to_string(),
    )
    .unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut tensor = |shape: &[usize], scale: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert("wte.weight".into(), tensor(&[vocab, c], 0.5));
    t.insert("wpe.weight".into(), tensor(&[positions, c], 0.1));
    for i in 0..layers {
        let mut put = |n: &str, w: &[usize], b: &[usize], scale: f32| {
            t.insert(format!("h.{i}.{n}.weight"), tensor(w, scale));
            t.insert(format!("h.{i}.{n}.bias"), tensor(b, 0.02));
        };
        put("ln_1", &[c], &[c], 1.0);
        put("attn.c_attn", &[c, 3 * c], &[3 * c], 0.3);
        put("attn.c_proj", &[c, c], &[c], 0.3);
        put("ln_2", &[c], &[c], 1.0);
        put("mlp.c_fc", &[c, 4 * c], &[4 * c], 0.3);
        put("mlp.c_proj", &[4 * c, c], &[c], 0.3);
    }
    t.insert("ln_f.weight".into(), tensor(&[c], 1.0));
    t.insert("ln_f.bias".into(), tensor(&[c], 0.02));
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();

    let chars = byte_chars();
    let vocab_map: serde_json::Map<String, Value> = chars
        .iter()
        .enumerate()
        .map(|(i, ch)| (ch.to_string(), json!(i)))
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": 256, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": true, "special": true}],
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
                  "vocab": vocab_map, "merges": []}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
}

#[test]
fn the_gpt2_deployment_generates_greedily_over_http() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_gpt2(dir.path());
    let gpt2 = Arc::new(model::Gpt2::load(dir.path()).unwrap());

    let rt = ray::init(ray::InitOptions::new().num_cpus(2.0)).unwrap();
    let opts = serve::HttpOptions {
        port: 0,
        ..serve::HttpOptions::default()
    };
    let server = serve::start_on(rt, opts).unwrap();
    server.run(model::deployment(Arc::clone(&gpt2))).unwrap();
    let addr = server.address();
    let ask = |q: &str| {
        let (code, body) = serve::http_request(addr, "GET", q, b"").unwrap();
        (code, serde_json::from_slice::<Value>(&body).unwrap())
    };
    let (code, first) = ask("/model?query=What%27s+the+meaning+of+life%3F&max_length=40");
    assert_eq!(code, 200, "{first}");
    let text = first[0]["generated_text"].as_str().unwrap().to_string();
    assert!(text.starts_with("What's the meaning of life?"), "{text:?}");
    // Greedy: the same continuation every time, and the same as generating in-process.
    assert_eq!(
        ask("/model?query=What%27s+the+meaning+of+life%3F&max_length=40").1,
        first
    );
    assert_eq!(
        gpt2.generate("What's the meaning of life?", 40).unwrap(),
        text
    );
    assert!(
        text.len() > "What's the meaning of life?".len(),
        "nothing was generated: {text:?}"
    );
    // Another prompt, another continuation.
    let (_, other) = ask("/model?query=Hello&max_length=40");
    assert_ne!(other[0]["generated_text"], first[0]["generated_text"]);

    let (code, e) = ask("/model");
    assert_eq!(code, 422, "{e}");
    assert!(e["error"].as_str().unwrap().contains("query="), "{e}");
    let (code, e) = ask("/model?query=hi&max_length=zero");
    assert_eq!(code, 422, "{e}");
    server.shutdown(Duration::from_secs(5));
}

#[test]
fn a_model_folder_without_its_files_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let e = model::Gpt2::load(dir.path()).unwrap_err();
    assert!(
        e.contains("no config.json")
            && e.contains("model.safetensors")
            && e.contains("nothing is downloaded"),
        "{e}"
    );
    write_tiny_gpt2(dir.path());
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"n_embd": 32, "n_head": 2, "n_layer": 2, "n_positions": 64, "vocab_size": 257}"#,
    )
    .unwrap();
    let e = model::Gpt2::load(dir.path()).unwrap_err();
    assert!(
        e.contains("tensor h.0.ln_1.weight has shape [16]") && e.contains("[32]"),
        "{e}"
    );
}
