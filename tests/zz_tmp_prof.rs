use gcl_repro::data::images::*;
use rand::SeedableRng;
use std::time::Instant;
#[test]
fn prof() {
    let bytes: Vec<Vec<u8>> = (0..200).map(|i| std::fs::read(format!("/tmp/gcl-bench-imgs/img_{i:06}.jpg")).unwrap()).collect();
    let t = Instant::now();
    let imgs: Vec<Rgb8> = bytes.iter().map(|b| decode(b).unwrap()).collect();
    let dec = t.elapsed().as_secs_f64() / 200.0;
    let mut out = vec![0f32; SAMPLE_LEN];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let t = Instant::now();
    for img in &imgs { train_transform(img, &mut rng, &mut out); }
    let tr = t.elapsed().as_secs_f64() / 200.0;
    let t = Instant::now();
    for img in &imgs { eval_transform(img, &mut out); }
    let ev = t.elapsed().as_secs_f64() / 200.0;
    eprintln!("PROF decode {:.3} ms, train tf {:.3} ms, eval tf {:.3} ms", dec*1e3, tr*1e3, ev*1e3);
}
