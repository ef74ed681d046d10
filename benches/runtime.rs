//! The runtime on this machine's preferred wgpu adapter (in CI Mesa's
//! lavapipe, on a GPU machine the GPU; the device is printed first).
//!
//! - `launch/*`: launch overhead for a tiny op (silu_and_mul, 1 x 4 f32).
//!   `trait` is `Op::launch` (argument check, scalars into the uniform ring,
//!   bind group, one submission per launch); `raw_wgpu` is the same WGSL
//!   pipeline dispatched with wgpu directly, doing only what any caller must
//!   (write the scalars, create the bind group, encode, submit); `trait_batched`
//!   records the launches between `begin_batch` and `flush` into one
//!   submission. Every iteration count ends with waiting for the device.
//!   Target: `trait` at most 1.2x `raw_wgpu`.
//! - `bandwidth/*`: each reference op at `KERNELHUB_BENCH_TOKENS` rows
//!   (default 256; 16384 on a datacenter GPU), launches batched, throughput
//!   in bytes each launch must read and write (the figures `kernelhub run`
//!   prints).
#![allow(missing_docs)] // criterion_group! generates undocumented functions
#![allow(clippy::print_stderr)] // the device measured is printed for the record

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kernelhub::exercise::{OPS, Workload, batched};
use kernelhub::{Arg, Device, Dtype, Hub, KernelSource, embedded};

fn hub() -> Hub {
    let device =
        kernelhub_wgpu::open().expect("a wgpu adapter (scripts/test.sh installs lavapipe)");
    eprintln!("device: {} ({})", device.info().name, device.info().kind);
    Hub::with_devices(vec![device])
}

fn launch(c: &mut Criterion) {
    let hub = hub();
    let kernel = hub
        .load(&KernelSource::Embedded("activation".into()))
        .expect("activation loads");
    let op = kernel
        .op("silu_and_mul", Dtype::F32)
        .expect("silu_and_mul f32");
    let device = kernel.device().clone();
    let input = device.upload(&[0u8; 32]).unwrap();
    let out = device.alloc(16).unwrap();
    let args = [
        Arg::tensor(&out, Dtype::F32),
        Arg::tensor(&input, Dtype::F32),
        1u32.into(),
        4u32.into(),
    ];

    // The same pipeline, by hand.
    let wgpu_device = kernelhub_wgpu::open().unwrap();
    let (gpu, queue) = (wgpu_device.wgpu_device(), wgpu_device.queue());
    let manifest = kernel.kernel().manifest();
    let artifact = &manifest.artifacts[manifest
        .artifacts
        .iter()
        .position(|a| a.path.get_ref() == op.artifact())
        .unwrap()];
    let source = embedded::find("activation")
        .unwrap()
        .file(artifact.path.get_ref())
        .unwrap();
    let module = gpu.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(std::str::from_utf8(source).unwrap().into()),
    });
    let pipeline = gpu.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("silu_and_mul"),
        compilation_options: Default::default(),
        cache: None,
    });
    let layout = pipeline.get_bind_group_layout(0);
    let uniform = gpu.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let (raw_out, raw_input) = (
        wgpu_device.unwrap_buffer(&out).unwrap().clone(),
        wgpu_device.unwrap_buffer(&input).unwrap().clone(),
    );
    let mut params = [0u8; 16];
    params[..4].copy_from_slice(&1u32.to_le_bytes());
    params[4..8].copy_from_slice(&4u32.to_le_bytes());
    let wait = || {
        gpu.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    };

    let mut group = c.benchmark_group("launch");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("trait", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                op.launch(&args).unwrap();
            }
            device.synchronize().unwrap();
            start.elapsed()
        })
    });
    group.bench_function("raw_wgpu", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                queue.write_buffer(&uniform, 0, &params);
                let group = gpu.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: raw_out.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: raw_input.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: uniform.as_entire_binding(),
                        },
                    ],
                });
                let mut encoder = gpu.create_command_encoder(&Default::default());
                {
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &group, &[]);
                    pass.dispatch_workgroups(1, 1, 1);
                }
                queue.submit([encoder.finish()]);
            }
            wait();
            start.elapsed()
        })
    });
    group.bench_function("trait_batched", |b| {
        b.iter_custom(|iters| batched(device.as_ref(), op.as_ref(), &args, iters).unwrap())
    });
    group.finish();
}

fn bandwidth(c: &mut Criterion) {
    let tokens: u32 = std::env::var("KERNELHUB_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let hub = hub();
    let mut group = c.benchmark_group("bandwidth");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    for kernel in embedded::KERNELS {
        let loaded = hub
            .load(&KernelSource::Embedded(kernel.name.into()))
            .expect("reference kernel loads");
        let device = loaded.device().clone();
        for choice in &loaded.plans()[0].choices {
            if choice.chosen.is_none() || !OPS.contains(&choice.op.as_str()) {
                continue;
            }
            let op = loaded.op(&choice.op, choice.dtype).unwrap();
            let workload =
                Workload::new(device.as_ref(), &choice.op, choice.dtype, tokens).unwrap();
            let args = workload.args();
            op.launch(&args).unwrap();
            let (_, mismatches) = workload.compare(device.as_ref()).unwrap();
            assert_eq!(
                mismatches, 0,
                "{} {} matches the reference",
                choice.op, choice.dtype
            );
            group.throughput(Throughput::Bytes(workload.bytes()));
            group.bench_function(
                format!("{}/{}/{}", choice.op, choice.dtype, workload.size()),
                |b| {
                    b.iter_custom(|iters| {
                        batched(device.as_ref(), op.as_ref(), &args, iters).unwrap()
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, launch, bandwidth);
criterion_main!(benches);
