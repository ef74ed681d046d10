//! Load: 64 threads calling `Hub::load` at the same moment, on the same
//! kernel and on different ones, from the embedded reference kernels and
//! from one shared Hub cache filled once; each thread then launches an op
//! on inputs of its own and checks the result against the CPU reference.
//! Nothing may be lost (every thread reports), nothing corrupt (every
//! result matches its own inputs, not a neighbour's), and nothing may
//! deadlock (the whole test has a deadline).
//!
//! The wgpu device is one per process (lavapipe in CI), so every thread
//! shares its queue, pipeline cache and uniform ring.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

mod common;

use common::{bytes, floats, install_embedded};
use kernelhub::{Arg, Dtype, Hub, KernelSource, LoadedKernel};
use kernelhub_hub::cache::HubCache;
use kernelhub_manifest::lock::LockedKernel;
use kernelhub_runtime::reference;

const THREADS: usize = 64;
/// Launches per thread, each on fresh inputs.
const ROUNDS: usize = 3;
/// The whole test, loads and launches included, must finish by then.
const DEADLINE: Duration = Duration::from_secs(120);
const KERNELS: [&str; 3] = ["activation", "rmsnorm", "rotary"];

/// Values in [-2, 2) that differ per `seed`, so one thread's result cannot
/// pass for another's.
fn values(len: usize, seed: usize) -> Vec<f32> {
    let mut state = (seed as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

/// `got` within f32 tolerance of `expected`, or why not.
fn compare(what: &str, got: &[f32], expected: &[f32]) -> Result<(), String> {
    if got.len() != expected.len() {
        return Err(format!(
            "{what}: {} values, expected {}",
            got.len(),
            expected.len()
        ));
    }
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        if (g - e).abs() > 1e-5 + 1e-4 * e.abs() {
            return Err(format!("{what}: element {i} is {g}, expected {e}"));
        }
    }
    Ok(())
}

/// Launches one op of `name` on inputs sized and filled from `seed`, and
/// checks the result against the CPU reference.
fn launch_and_check(name: &str, kernel: &LoadedKernel, seed: usize) -> Result<(), String> {
    let device = kernel.device();
    let fail = |e: kernelhub::RuntimeError| format!("{name} (seed {seed}): {e}");
    match name {
        "activation" => {
            let (tokens, d) = (1 + seed % 3, 1 + seed % 37);
            let input = values(tokens * 2 * d, seed);
            let input_buffer = device.upload(&bytes(&input)).map_err(fail)?;
            let out = device.alloc((tokens * d * 4) as u64).map_err(fail)?;
            kernel
                .op("silu_and_mul", Dtype::F32)
                .map_err(fail)?
                .launch(&[
                    Arg::tensor(&out, Dtype::F32),
                    Arg::tensor(&input_buffer, Dtype::F32),
                    (tokens as u32).into(),
                    (d as u32).into(),
                ])
                .map_err(fail)?;
            let mut expected = vec![0.0; tokens * d];
            reference::silu_and_mul(&mut expected, &input, tokens, d);
            let got = floats(
                &device
                    .download(&out, 0, (tokens * d * 4) as u64)
                    .map_err(fail)?,
            );
            compare(&format!("silu_and_mul seed {seed}"), &got, &expected)
        }
        "rmsnorm" => {
            let (tokens, hidden) = (1 + seed % 4, 1 + seed % 300);
            let input = values(tokens * hidden, seed);
            let weight = values(hidden, seed + 1000);
            let input_buffer = device.upload(&bytes(&input)).map_err(fail)?;
            let weight_buffer = device.upload(&bytes(&weight)).map_err(fail)?;
            let out = device.alloc((tokens * hidden * 4) as u64).map_err(fail)?;
            kernel
                .op("rms_norm", Dtype::F32)
                .map_err(fail)?
                .launch(&[
                    Arg::tensor(&out, Dtype::F32),
                    Arg::tensor(&input_buffer, Dtype::F32),
                    Arg::tensor(&weight_buffer, Dtype::F32),
                    Arg::Scalar(kernelhub::Scalar::F32(1e-6)),
                    (tokens as u32).into(),
                    (hidden as u32).into(),
                ])
                .map_err(fail)?;
            let mut expected = vec![0.0; tokens * hidden];
            reference::rms_norm(&mut expected, &input, &weight, 1e-6, tokens, hidden);
            let got = floats(
                &device
                    .download(&out, 0, (tokens * hidden * 4) as u64)
                    .map_err(fail)?,
            );
            compare(&format!("rms_norm seed {seed}"), &got, &expected)
        }
        "rotary" => {
            let g = reference::Rotary {
                tokens: 1 + seed % 3,
                num_heads: 1 + seed % 2,
                num_kv_heads: 1,
                head_size: 8,
                rot_dim: 2 + 2 * (seed % 4),
                max_position: 4,
                neox: seed.is_multiple_of(2),
            };
            let positions: Vec<u32> = (0..g.tokens).map(|t| ((t + seed) % 4) as u32).collect();
            let mut query = values(g.tokens * g.num_heads * g.head_size, seed);
            let mut key = values(g.tokens * g.num_kv_heads * g.head_size, seed + 2000);
            let cache = values(g.max_position * g.rot_dim, seed + 3000);
            let positions_buffer = device
                .upload(
                    &positions
                        .iter()
                        .flat_map(|p| p.to_le_bytes())
                        .collect::<Vec<u8>>(),
                )
                .map_err(fail)?;
            let query_buffer = device.upload(&bytes(&query)).map_err(fail)?;
            let key_buffer = device.upload(&bytes(&key)).map_err(fail)?;
            let cache_buffer = device.upload(&bytes(&cache)).map_err(fail)?;
            let op = if g.neox { "rotary_neox" } else { "rotary_gptj" };
            kernel
                .op(op, Dtype::F32)
                .map_err(fail)?
                .launch(&[
                    Arg::tensor(&positions_buffer, Dtype::U32),
                    Arg::tensor(&query_buffer, Dtype::F32),
                    Arg::tensor(&key_buffer, Dtype::F32),
                    Arg::tensor(&cache_buffer, Dtype::F32),
                    (g.tokens as u32).into(),
                    (g.num_heads as u32).into(),
                    (g.num_kv_heads as u32).into(),
                    (g.head_size as u32).into(),
                    (g.rot_dim as u32).into(),
                    (g.max_position as u32).into(),
                ])
                .map_err(fail)?;
            reference::rotary(&positions, &mut query, &mut key, &cache, g);
            let got_query = floats(
                &device
                    .download(&query_buffer, 0, (query.len() * 4) as u64)
                    .map_err(fail)?,
            );
            let got_key = floats(
                &device
                    .download(&key_buffer, 0, (key.len() * 4) as u64)
                    .map_err(fail)?,
            );
            compare(&format!("{op} query seed {seed}"), &got_query, &query)?;
            compare(&format!("{op} key seed {seed}"), &got_key, &key)
        }
        other => Err(format!("no check for `{other}`")),
    }
}

/// Installs every file of the three embedded kernels into one Hub cache,
/// once, as `kernelhub fetch` would leave them; returns their lock entries.
fn filled_cache(cache: &HubCache) -> Vec<LockedKernel> {
    KERNELS
        .iter()
        .enumerate()
        .map(|(i, name)| install_embedded(cache, name, &format!("{i:0>40}")))
        .collect()
}

#[test]
fn sixty_four_threads_load_and_launch_at_once_with_nothing_lost_or_mixed_up() {
    let started = Instant::now();
    let device = kernelhub_wgpu::open().expect("an adapter (scripts/test.sh installs lavapipe)");
    let hub = Arc::new(Hub::with_devices(vec![device]));
    let dir = tempfile::tempdir().unwrap();
    let cache = HubCache::new(dir.path());
    let locked = filled_cache(&cache);
    // Thread i loads kernel i % 3, from the embedded copy or the cache by
    // turns: every kernel from both sources, 10 or 11 threads on each.
    let sources: Vec<(&str, KernelSource)> = (0..THREADS)
        .map(|i| {
            let which = i % KERNELS.len();
            let source = if (i / KERNELS.len()).is_multiple_of(2) {
                KernelSource::Embedded(KERNELS[which].into())
            } else {
                KernelSource::Cached {
                    cache: cache.clone(),
                    kernel: locked[which].clone(),
                    trust: Default::default(),
                }
            };
            (KERNELS[which], source)
        })
        .collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let (report, results) = mpsc::channel();
    for (i, (name, source)) in sources.into_iter().enumerate() {
        let (hub, barrier, report) = (hub.clone(), barrier.clone(), report.clone());
        // Detached: a thread that deadlocks must not keep the test from
        // failing at its deadline.
        std::thread::spawn(move || {
            barrier.wait();
            let outcome = hub
                .load(&source)
                .map_err(|e| format!("thread {i}: loading {}: {e}", source.describe()))
                .and_then(|kernel| {
                    (0..ROUNDS).try_for_each(|round| {
                        launch_and_check(name, &kernel, i * ROUNDS + round)
                            .map_err(|e| format!("thread {i} ({}): {e}", source.describe()))
                    })
                });
            let _ = report.send((i, outcome));
        });
    }
    drop(report);
    let mut finished = [false; THREADS];
    let mut failures = Vec::new();
    for _ in 0..THREADS {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match results.recv_timeout(left) {
            Ok((i, outcome)) => {
                assert!(!finished[i], "thread {i} reported twice");
                finished[i] = true;
                if let Err(e) = outcome {
                    failures.push(e);
                }
            }
            Err(e) => {
                let stuck: Vec<usize> = (0..THREADS).filter(|i| !finished[*i]).collect();
                panic!(
                    "deadlock? after {:?} ({e}) threads {stuck:?} have not finished",
                    started.elapsed()
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
