//! The JPEG loader on small generated images: shapes, value ranges, determinism, the exact
//! evaluation transform, and bad-image handling.
use gcl_repro::bench::images::synthetic_photo;
use gcl_repro::data::images::loader::{epoch_seed, ImageLoader, LoaderOptions};
use gcl_repro::data::images::{IMAGENET_MEAN, IMAGENET_STD};
use gcl_repro::data::listfile::ListDataset;
use rand::SeedableRng;
use std::path::Path;
use std::sync::Arc;
use tch::{Kind, Tensor};

/// Write `n` JPEGs of varied sizes (tiny, portrait, landscape, grey) into `dir/imgs/` and a
/// list `dir/list.txt`; label of image i is i % 5.
fn make_set(dir: &Path, n: usize) -> Arc<ListDataset> {
    std::fs::create_dir_all(dir.join("imgs")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let sizes = [(500u32, 375u32), (375, 500), (64, 48), (300, 300), (17, 230), (640, 120)];
    let mut list = String::new();
    for i in 0..n {
        let (w, h) = sizes[i % sizes.len()];
        let img = synthetic_photo(w, h, &mut rng);
        let name = format!("imgs/{i:03}.jpg");
        if i % 7 == 6 {
            image::DynamicImage::ImageRgb8(img).into_luma8().save(dir.join(&name)).unwrap();
        } else {
            img.save(dir.join(&name)).unwrap();
        }
        list.push_str(&format!("{name} {}\n", i % 5));
    }
    std::fs::write(dir.join("list.txt"), list).unwrap();
    Arc::new(ListDataset::from_file(&dir.join("list.txt"), None).unwrap())
}

fn opts(batch_size: usize, threads: usize) -> LoaderOptions {
    LoaderOptions { batch_size, threads, prefetch: 2, skip_bad: false, color_jitter: true }
}

fn collect(loader: &ImageLoader, indices: Vec<usize>, train: bool, seed: u64) -> Vec<(Tensor, Tensor)> {
    loader.epoch(indices, train, seed).map(|b| b.unwrap()).collect()
}

#[test]
fn batches_have_shapes_labels_and_normalised_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = make_set(tmp.path(), 30);
    let loader = ImageLoader::new(ds.clone(), tmp.path().to_path_buf(), opts(8, 2)).unwrap();
    let indices: Vec<usize> = (0..30).rev().collect();
    for train in [true, false] {
        let batches = collect(&loader, indices.clone(), train, 1);
        let sizes: Vec<i64> = batches.iter().map(|(x, _)| x.size()[0]).collect();
        assert_eq!(sizes, vec![8, 8, 8, 6]);
        let labels: Vec<i64> = batches.iter().flat_map(|(_, y)| Vec::<i64>::try_from(y).unwrap()).collect();
        assert_eq!(labels, indices.iter().map(|i| (i % 5) as i64).collect::<Vec<_>>());
        for (x, y) in &batches {
            assert_eq!(x.size()[1..], [3, 224, 224]);
            assert_eq!((x.kind(), y.kind()), (Kind::Float, Kind::Int64));
            for c in 0..3 {
                let plane = x.select(1, c);
                let (lo, hi) = (
                    -IMAGENET_MEAN[c as usize] / IMAGENET_STD[c as usize],
                    (1.0 - IMAGENET_MEAN[c as usize]) / IMAGENET_STD[c as usize],
                );
                let (min, max) = (plane.min().double_value(&[]) as f32, plane.max().double_value(&[]) as f32);
                assert!(min >= lo - 1e-5 && max <= hi + 1e-5, "channel {c}: [{min}, {max}] outside [{lo}, {hi}]");
                // Real content, not a constant: the synthetic photos span a wide range.
                assert!(max - min > 1.0, "channel {c} is nearly constant");
            }
        }
    }
}

#[test]
fn augmentation_is_deterministic_per_seed_and_independent_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = make_set(tmp.path(), 20);
    let one =
        ImageLoader::new(ds.clone(), tmp.path().to_path_buf(), LoaderOptions { prefetch: 1, ..opts(6, 1) }).unwrap();
    let three = ImageLoader::new(ds, tmp.path().to_path_buf(), LoaderOptions { prefetch: 4, ..opts(6, 3) }).unwrap();
    let idx: Vec<usize> = (0..20).collect();
    let a = collect(&one, idx.clone(), true, epoch_seed(5, 0));
    let b = collect(&three, idx.clone(), true, epoch_seed(5, 0));
    let c = collect(&one, idx.clone(), true, epoch_seed(5, 1));
    for ((xa, _), (xb, _)) in a.iter().zip(&b) {
        assert!(xa.equal(xb), "same seed, different thread count: different images");
    }
    assert!(!a[0].0.equal(&c[0].0), "another epoch seed must give other augmentations");
    // Evaluation ignores the seed.
    let e1 = collect(&one, idx.clone(), false, 1);
    let e2 = collect(&three, idx, false, 2);
    assert!(e1.iter().zip(&e2).all(|((x, _), (y, _))| x.equal(y)));
}

#[test]
fn eval_transform_is_exact_resize_and_centre_crop() {
    // 600x512 PNG (lossless): resize to 300x256 is an exact factor 2, then the centre crop
    // starts at (16, 38). R alternates 0/255 in 2-pixel column stripes, G in 2-pixel row
    // stripes, B is 128. The antialiased bilinear filter at factor 2 weighs source pixels
    // 2X-1..2X+2 by 1/8, 3/8, 3/8, 1/8, so an output pixel on a 255 stripe gets 0.75*255 and
    // on a 0 stripe 0.25*255.
    let tmp = tempfile::tempdir().unwrap();
    let img = image::RgbImage::from_fn(600, 512, |x, y| {
        image::Rgb([if (x / 2) % 2 == 0 { 255 } else { 0 }, if (y / 2) % 2 == 0 { 255 } else { 0 }, 128])
    });
    img.save(tmp.path().join("ramp.png")).unwrap();
    // And a 300x256 image that needs no resize: the crop must be the exact source pixels.
    let small = image::RgbImage::from_fn(300, 256, |x, y| {
        image::Rgb([(x % 256) as u8, y as u8, ((x * 7 + y * 3) % 256) as u8])
    });
    small.save(tmp.path().join("exact.png")).unwrap();
    std::fs::write(tmp.path().join("list.txt"), "ramp.png 0\nexact.png 1\n").unwrap();
    let ds = Arc::new(ListDataset::from_file(&tmp.path().join("list.txt"), None).unwrap());
    let loader = ImageLoader::new(ds, tmp.path().to_path_buf(), opts(2, 1)).unwrap();
    let (x, _) = loader.epoch(vec![0, 1], false, 0).next().unwrap().unwrap();
    let x = x.to_kind(Kind::Double);
    let norm = |v: f64, c: usize| (v / 255.0 - IMAGENET_MEAN[c] as f64) / IMAGENET_STD[c] as f64;
    for oy in 0..224 {
        for ox in 0..224 {
            let (big_x, big_y) = (ox + 38, oy + 16);
            let r = if big_x % 2 == 0 { 0.75 * 255.0 } else { 0.25 * 255.0 };
            let g = if big_y % 2 == 0 { 0.75 * 255.0 } else { 0.25 * 255.0 };
            let want = [norm(r, 0), norm(g, 1), norm(128.0, 2)];
            let p = small.get_pixel(ox as u32 + 38, oy as u32 + 16);
            for c in 0..3 {
                let got = x.double_value(&[0, c as i64, oy as i64, ox as i64]);
                assert!((got - want[c]).abs() < 1e-4, "ramp ({c},{oy},{ox}): {got} vs {}", want[c]);
                let got = x.double_value(&[1, c as i64, oy as i64, ox as i64]);
                assert!((got - norm(p[c] as f64, c)).abs() < 1e-4, "exact ({c},{oy},{ox})");
            }
        }
    }
}

#[test]
fn bad_images_are_named_or_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = make_set(tmp.path(), 10);
    std::fs::write(tmp.path().join("imgs/003.jpg"), b"not a jpeg at all").unwrap(); // list line 4
    std::fs::remove_file(tmp.path().join("imgs/007.jpg")).unwrap(); // list line 8
    let loader = ImageLoader::new(ds.clone(), tmp.path().to_path_buf(), opts(4, 2)).unwrap();
    let results: Vec<_> = loader.epoch((0..10).collect(), true, 0).collect();
    assert_eq!(results.len(), 1, "the epoch stops at the first bad batch");
    let msg = format!("{:#}", results[0].as_ref().unwrap_err());
    assert!(msg.contains("imgs/003.jpg (list.txt:4)") && msg.contains("cannot decode"), "{msg}");
    assert!(msg.contains("skip_bad"), "{msg}");

    let missing = format!("{:#}", loader.epoch(vec![7], false, 0).next().unwrap().unwrap_err());
    assert!(missing.contains("imgs/007.jpg (list.txt:8): cannot read the file"), "{missing}");

    let skipping =
        ImageLoader::new(ds, tmp.path().to_path_buf(), LoaderOptions { skip_bad: true, ..opts(4, 2) }).unwrap();
    let mut epoch = skipping.epoch((0..10).collect(), false, 0);
    let batches: Vec<(Tensor, Tensor)> = epoch.by_ref().map(|b| b.unwrap()).collect();
    let labels: Vec<i64> = batches.iter().flat_map(|(_, y)| Vec::<i64>::try_from(y).unwrap()).collect();
    assert_eq!(labels, vec![0, 1, 2, 4, 0, 1, 3, 4]); // images 3 and 7 dropped
    assert_eq!(batches.iter().map(|(x, _)| x.size()[0]).collect::<Vec<_>>(), vec![3, 3, 2]);
    assert_eq!(epoch.skipped_count(), 2);
    assert_eq!(epoch.skipped().iter().map(|s| s.index).collect::<Vec<_>>(), vec![3, 7]);
}

#[test]
fn out_of_range_index_is_an_error_and_early_drop_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = make_set(tmp.path(), 6);
    let loader = ImageLoader::new(ds, tmp.path().to_path_buf(), LoaderOptions { prefetch: 1, ..opts(1, 1) }).unwrap();
    let msg = format!("{:#}", loader.epoch(vec![0, 6], false, 0).nth(1).unwrap().unwrap_err());
    assert!(msg.contains("index 6 is out of range") && msg.contains("6 entries"), "{msg}");
    // Take one batch of many and drop the epoch: the producer must stop, not hang.
    let mut epoch = loader.epoch((0..6).cycle().take(60).collect(), true, 0);
    assert!(epoch.next().unwrap().is_ok());
    drop(epoch);
}
