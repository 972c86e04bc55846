//! GPT-2 on candle (Hugging Face's `gpt2` architecture, our own forward pass on candle-core)
//! and its tokenizer (the `tokenizers` crate), loaded from a local folder, with greedy
//! generation, as a Serve deployment `model` at `/model?query=...`.

use std::path::Path;
use std::sync::Arc;

use candle_core::{D, DType, Device, Tensor};
use serde::Deserialize;
use serve::{Deployment, Handler, Request, Response};

/// The files a model folder must hold.
pub const FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// What `--model-dir` must be, for messages.
pub const WHERE: &str = "a folder holding Hugging Face's gpt2 files model.safetensors, \
config.json and tokenizer.json (https://huggingface.co/openai-community/gpt2, downloaded \
beforehand: nothing is downloaded at run time)";

/// The fields of `config.json` GPT-2 needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub n_embd: usize,
    pub n_head: usize,
    pub n_layer: usize,
    #[serde(alias = "n_ctx")]
    pub n_positions: usize,
    pub vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
}

fn default_eps() -> f64 {
    1e-5
}

struct Block {
    ln_1: (Tensor, Tensor),
    c_attn: (Tensor, Tensor),
    attn_proj: (Tensor, Tensor),
    ln_2: (Tensor, Tensor),
    c_fc: (Tensor, Tensor),
    mlp_proj: (Tensor, Tensor),
}

/// A loaded GPT-2 and its tokenizer.
pub struct Gpt2 {
    pub config: Config,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: (Tensor, Tensor),
    tokenizer: tokenizers::Tokenizer,
    eos: Option<u32>,
}

impl std::fmt::Debug for Gpt2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpt2({:?})", self.config)
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Gpt2 {
    /// Loads `dir`'s `config.json`, `model.safetensors` and `tokenizer.json`; errors name the
    /// file and the tensor or field at fault.
    pub fn load(dir: &Path) -> Result<Gpt2, String> {
        for f in FILES {
            if !dir.join(f).is_file() {
                return Err(format!(
                    "{}: no {f}; --model-dir takes {WHERE}",
                    dir.display()
                ));
            }
        }
        let at = |f: &str| dir.join(f).display().to_string();
        let text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| format!("{}: {e}", at("config.json")))?;
        let config: Config =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", at("config.json")))?;
        if config.n_head == 0 || !config.n_embd.is_multiple_of(config.n_head) {
            return Err(format!(
                "{}: n_embd {} is not a multiple of n_head {}",
                at("config.json"),
                config.n_embd,
                config.n_head
            ));
        }
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
            .map_err(|e| format!("{}: {e}", at("model.safetensors")))?;
        let c = config.n_embd;
        let get = |name: &str, shape: &[usize]| -> Result<Tensor, String> {
            let t = tensors
                .get(name)
                .or_else(|| tensors.get(&format!("transformer.{name}")))
                .ok_or_else(|| format!("{}: no tensor {name}", at("model.safetensors")))?;
            if t.dims() != shape {
                return Err(format!(
                    "{}: tensor {name} has shape {:?}, config.json says {shape:?}",
                    at("model.safetensors"),
                    t.dims()
                ));
            }
            t.to_dtype(DType::F32).map_err(err)
        };
        let pair = |name: &str, w: &[usize], b: &[usize]| -> Result<(Tensor, Tensor), String> {
            Ok((
                get(&format!("{name}.weight"), w)?,
                get(&format!("{name}.bias"), b)?,
            ))
        };
        let mut blocks = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let h = |n: &str| format!("h.{i}.{n}");
            blocks.push(Block {
                ln_1: pair(&h("ln_1"), &[c], &[c])?,
                c_attn: pair(&h("attn.c_attn"), &[c, 3 * c], &[3 * c])?,
                attn_proj: pair(&h("attn.c_proj"), &[c, c], &[c])?,
                ln_2: pair(&h("ln_2"), &[c], &[c])?,
                c_fc: pair(&h("mlp.c_fc"), &[c, 4 * c], &[4 * c])?,
                mlp_proj: pair(&h("mlp.c_proj"), &[4 * c, c], &[c])?,
            });
        }
        let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| format!("{}: {e}", at("tokenizer.json")))?;
        let eos = tokenizer.token_to_id("<|endoftext|>");
        Ok(Gpt2 {
            wte: get("wte.weight", &[config.vocab_size, c])?,
            wpe: get("wpe.weight", &[config.n_positions, c])?,
            ln_f: pair("ln_f", &[c], &[c])?,
            blocks,
            tokenizer,
            eos,
            config,
        })
    }

    fn norm(&self, x: &Tensor, (w, b): &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, w, b, self.config.layer_norm_epsilon as f32)
    }

    /// The next-token logits after `ids` (one forward pass over the whole sequence).
    fn next_logits(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let t = ids.len();
        let (c, nh) = (self.config.n_embd, self.config.n_head);
        let hd = c / nh;
        let idx = Tensor::new(ids, &Device::Cpu)?;
        let mut x = self
            .wte
            .index_select(&idx, 0)?
            .add(&self.wpe.narrow(0, 0, t)?)?;
        let mask: Vec<f32> = (0..t * t)
            .map(|i| {
                if i % t > i / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu)?;
        let scale = 1.0 / (hd as f64).sqrt();
        for b in &self.blocks {
            let h = self.norm(&x, &b.ln_1)?;
            let qkv = h.matmul(&b.c_attn.0)?.broadcast_add(&b.c_attn.1)?;
            let heads = |i: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(1, i * c, c)?
                    .reshape((t, nh, hd))?
                    .transpose(0, 1)?
                    .contiguous()
            };
            let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
            let att = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att
                .matmul(&v)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((t, c))?;
            x = (x + y.matmul(&b.attn_proj.0)?.broadcast_add(&b.attn_proj.1)?)?;
            let h = self.norm(&x, &b.ln_2)?;
            let m = h.matmul(&b.c_fc.0)?.broadcast_add(&b.c_fc.1)?.gelu()?;
            x = (x + m.matmul(&b.mlp_proj.0)?.broadcast_add(&b.mlp_proj.1)?)?;
        }
        let last = self.norm(&x, &self.ln_f)?.narrow(0, t - 1, 1)?;
        last.matmul(&self.wte.t()?.contiguous()?)?.squeeze(0)
    }

    /// `prompt` continued greedily up to `max_length` tokens in all (Hugging Face pipeline's
    /// `max_length`), or to the end-of-text token.
    pub fn generate(&self, prompt: &str, max_length: usize) -> Result<String, String> {
        let enc = self.tokenizer.encode(prompt, false).map_err(err)?;
        let mut ids: Vec<u32> = enc.get_ids().to_vec();
        if ids.is_empty() {
            return Err("the query is empty".into());
        }
        let limit = max_length.min(self.config.n_positions);
        if ids.len() > limit {
            ids.drain(..ids.len() - limit);
        }
        while ids.len() < limit {
            let next = self
                .next_logits(&ids)
                .and_then(|l| l.argmax(D::Minus1))
                .and_then(|a| a.to_scalar::<u32>())
                .map_err(err)?;
            if Some(next) == self.eos {
                break;
            }
            ids.push(next);
        }
        self.tokenizer.decode(&ids, true).map_err(err)
    }
}

/// The deployment's handler: each replica shares the loaded model.
struct Model(Arc<Gpt2>);

impl Handler for Model {
    fn call(&mut self, req: Request) -> Response {
        let Some(query) = req.query_param("query") else {
            return Response::error(422, "expected /model?query=<text>");
        };
        let max_length = match req.query_param("max_length").map(str::parse::<usize>) {
            None => 100,
            Some(Ok(n)) if n >= 1 => n,
            Some(_) => return Response::error(422, "max_length: expected a whole number >= 1"),
        };
        match self.0.generate(query, max_length) {
            Ok(text) => Response::json(&serde_json::json!([{ "generated_text": text }])),
            Err(e) => Response::error(422, &e),
        }
    }
}

/// The tutorial's deployment: `model` at `/model`, greedy continuations of `?query=`.
pub fn deployment(model: Arc<Gpt2>) -> Deployment {
    Deployment::new("model", move || Model(Arc::clone(&model)))
}
