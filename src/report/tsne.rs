//! Barnes-Hut t-SNE (van der Maaten 2014) for the paper's Fig. 1 / Fig. 3 embeddings.
//!
//! The settings follow scikit-learn's `TSNE` so that our pictures match what LT code bases draw:
//! perplexity 50, early exaggeration 15 for the first 250 iterations (momentum 0.5, then 0.8),
//! 1000 iterations in all, learning rate `max(n / exaggeration / 4, 50)`, gains with a 0.01
//! floor, Barnes-Hut angle 0.5, and PCA initialisation scaled so the first coordinate has a
//! standard deviation of 1e-4.
//!
//! Why our own code and not the `bhtsne` crate (0.7): it has no built-in PCA initialisation
//! (random, spectral or a user-given start), and it uses parallel float reductions (e.g.
//! `par_iter().sum()`), whose grouping rayon may vary between runs, so bit-identical output is
//! not guaranteed. Here every per-point quantity is computed by one thread in a fixed order and
//! all cross-point sums are sequential, so the output is identical for a seed whatever the
//! thread count.
//!
//! Neighbours are found exactly (brute force, `3 * perplexity` per point, as scikit-learn): for
//! the embedding sizes of this project (<= ~20k points, 64-d) that costs a second or two and a
//! vantage-point tree gains little in 64 dimensions.

use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// How the 2-d map starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsneInit {
    /// First two principal components, scaled so the first has std 1e-4 (scikit-learn `init="pca"`).
    Pca,
    /// Isotropic Gaussian with std 1e-4 from the seed (scikit-learn `init="random"`).
    Random,
}

#[derive(Clone, Debug)]
pub struct TsneOptions {
    pub perplexity: f64,
    pub early_exaggeration: f64,
    /// Iterations with exaggerated affinities and momentum 0.5 (scikit-learn: 250).
    pub exaggeration_iters: usize,
    /// Total iterations, exaggeration phase included.
    pub iterations: usize,
    /// Barnes-Hut angle: a cell is summarised when `width / distance < theta`.
    pub theta: f64,
    /// `None`: scikit-learn's "auto" rule `max(n / early_exaggeration / 4, 50)`.
    pub learning_rate: Option<f64>,
    pub init: TsneInit,
    pub seed: u64,
    /// Size of the rayon pool; 0 = all cores. The output does not depend on it.
    pub threads: usize,
    /// Show an indicatif progress bar over iterations.
    pub progress: bool,
}

impl Default for TsneOptions {
    fn default() -> Self {
        TsneOptions {
            perplexity: 50.0,
            early_exaggeration: 15.0,
            exaggeration_iters: 250,
            iterations: 1000,
            theta: 0.5,
            learning_rate: None,
            init: TsneInit::Pca,
            seed: 0,
            threads: 0,
            progress: false,
        }
    }
}

/// Embed `n` points of dimension `dim` (row-major in `data`) into 2-d.
///
/// Panics when `data.len() != n * dim` (a programming error, not bad user input).
pub fn tsne(data: &[f32], n: usize, dim: usize, opts: &TsneOptions) -> Vec<[f32; 2]> {
    assert_eq!(data.len(), n * dim, "tsne: data has {} values, expected n * dim = {n} * {dim}", data.len());
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![[0.0, 0.0]];
    }
    match rayon::ThreadPoolBuilder::new().num_threads(opts.threads).build() {
        Ok(pool) => pool.install(|| tsne_in_pool(data, n, dim, opts)),
        Err(e) => {
            // A map is worth more than its thread count: go on in the global pool, and say so.
            tracing::warn!("t-SNE: no pool of {} threads ({e}); using rayon's global pool", opts.threads);
            tsne_in_pool(data, n, dim, opts)
        }
    }
}

fn tsne_in_pool(data: &[f32], n: usize, dim: usize, opts: &TsneOptions) -> Vec<[f32; 2]> {
    // scikit-learn rejects perplexity >= n; we shrink it instead so small panels still work.
    let perplexity = opts.perplexity.min((n - 1) as f64 / 3.0).max(1.0);
    let k = ((3.0 * perplexity + 1.0) as usize).min(n - 1);
    let neighbours = nearest_neighbours(data, n, dim, k);
    let p = joint_probabilities(&neighbours, n, k, perplexity);
    let mut y = match opts.init {
        TsneInit::Pca => pca_init(data, n, dim),
        TsneInit::Random => random_init(n, opts.seed),
    };
    let lr = opts.learning_rate.unwrap_or_else(|| (n as f64 / opts.early_exaggeration / 4.0).max(50.0));
    optimise(&mut y, &p, lr, opts);
    y.iter().map(|v| [v[0] as f32, v[1] as f32]).collect()
}

// ---------------------------------------------------------------------------------------------
// Input affinities
// ---------------------------------------------------------------------------------------------

/// For each point its `k` nearest other points as (squared distance, index), nearest first.
/// Ties are broken by index so the result is fully determined by the data.
fn nearest_neighbours(data: &[f32], n: usize, dim: usize, k: usize) -> Vec<(f32, u32)> {
    let mut out = vec![(0f32, 0u32); n * k];
    out.par_chunks_mut(k).enumerate().for_each_init(
        || Vec::with_capacity(n),
        |cand: &mut Vec<(f32, u32)>, (i, row)| {
            let xi = &data[i * dim..(i + 1) * dim];
            cand.clear();
            for j in 0..n {
                if j != i {
                    cand.push((squared_distance(xi, &data[j * dim..(j + 1) * dim]), j as u32));
                }
            }
            let order = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            cand.select_nth_unstable_by(k - 1, order);
            cand[..k].sort_unstable_by(order);
            row.copy_from_slice(&cand[..k]);
        },
    );
    out
}

/// Squared Euclidean distance with 8 independent accumulators so the loop vectorises.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s
}

/// Sparse symmetric joint probabilities P (CSR), summing to 1.
struct SparseP {
    row_start: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f64>,
}

/// Conditional p_{j|i} by a binary search on the Gaussian precision per point (target entropy
/// ln(perplexity), tolerance 1e-5, 100 steps, as scikit-learn), then P = (P + P^T) / sum.
fn joint_probabilities(nb: &[(f32, u32)], n: usize, k: usize, perplexity: f64) -> SparseP {
    let mut cond = vec![0f64; n * k];
    cond.par_chunks_mut(k).enumerate().for_each(|(i, row)| {
        let d: Vec<f64> = nb[i * k..(i + 1) * k].iter().map(|e| e.0 as f64).collect();
        conditional_row(&d, perplexity, row);
    });
    // Symmetrise: collect both directions, sort, merge duplicates.
    let mut triples: Vec<(u32, u32, f64)> = Vec::with_capacity(2 * n * k);
    for i in 0..n {
        for t in 0..k {
            let j = nb[i * k + t].1;
            let v = cond[i * k + t];
            triples.push((i as u32, j, v));
            triples.push((j, i as u32, v));
        }
    }
    triples.par_sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut row_start = vec![0usize; n + 1];
    let mut cols = Vec::with_capacity(triples.len());
    let mut vals: Vec<f64> = Vec::with_capacity(triples.len());
    let mut last: Option<(u32, u32)> = None;
    for &(i, j, v) in &triples {
        match vals.last_mut() {
            Some(same) if last == Some((i, j)) => *same += v,
            _ => {
                cols.push(j);
                vals.push(v);
                row_start[i as usize + 1] += 1;
                last = Some((i, j));
            }
        }
    }
    for i in 0..n {
        row_start[i + 1] += row_start[i];
    }
    let total: f64 = vals.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    vals.iter_mut().for_each(|v| *v /= total);
    SparseP { row_start, cols, vals }
}

/// One row of conditional probabilities from squared distances `d`.
fn conditional_row(d: &[f64], perplexity: f64, out: &mut [f64]) {
    let target = perplexity.ln();
    // Shifting by the smallest distance leaves P and the entropy unchanged but avoids underflow.
    let d0 = d.iter().cloned().fold(f64::INFINITY, f64::min);
    let (mut beta, mut lo, mut hi) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    for _ in 0..100 {
        let mut sum = 0.0;
        for (o, &dj) in out.iter_mut().zip(d) {
            *o = (-(dj - d0) * beta).exp();
            sum += *o;
        }
        let sum = sum.max(1e-8);
        let mut weighted = 0.0;
        for (o, &dj) in out.iter_mut().zip(d) {
            *o /= sum;
            weighted += (dj - d0) * *o;
        }
        let entropy = sum.ln() + beta * weighted;
        let diff = entropy - target;
        if diff.abs() <= 1e-5 {
            break;
        }
        if diff > 0.0 {
            lo = beta;
            beta = if hi.is_infinite() { beta * 2.0 } else { (beta + hi) / 2.0 };
        } else {
            hi = beta;
            beta = if lo.is_infinite() { beta / 2.0 } else { (beta + lo) / 2.0 };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Initialisation
// ---------------------------------------------------------------------------------------------

/// Projection on the first two principal components, scaled so the first has std 1e-4.
/// Signs follow scikit-learn's `svd_flip`: the largest-magnitude loading of each axis is positive.
fn pca_init(data: &[f32], n: usize, dim: usize) -> Vec<[f64; 2]> {
    let mut mean = vec![0f64; dim];
    for row in data.chunks_exact(dim) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    // Centred data, one contiguous column per feature, so covariance entries are plain dots.
    let cols: Vec<Vec<f64>> =
        (0..dim).into_par_iter().map(|a| (0..n).map(|s| data[s * dim + a] as f64 - mean[a]).collect()).collect();
    let cov: Vec<Vec<f64>> =
        (0..dim).into_par_iter().map(|a| (0..dim).map(|b| dot(&cols[a], &cols[b])).collect()).collect();
    let v1 = leading_eigenvector(&cov, None);
    let v2 = leading_eigenvector(&cov, Some(&v1));
    let mut y: Vec<[f64; 2]> = (0..n)
        .map(|s| {
            let (mut a, mut b) = (0.0, 0.0);
            for f in 0..dim {
                a += cols[f][s] * v1[f];
                b += cols[f][s] * v2[f];
            }
            [a, b]
        })
        .collect();
    let m0 = y.iter().map(|p| p[0]).sum::<f64>() / n as f64;
    let std0 = (y.iter().map(|p| (p[0] - m0).powi(2)).sum::<f64>() / n as f64).sqrt();
    if std0 > 0.0 {
        let s = 1e-4 / std0;
        y.iter_mut().for_each(|p| *p = [p[0] * s, p[1] * s]);
    }
    y
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Power iteration on a symmetric PSD matrix; with `orth`, on the complement of that vector.
fn leading_eigenvector(m: &[Vec<f64>], orth: Option<&[f64]>) -> Vec<f64> {
    let d = m.len();
    // Deterministic, not orthogonal to any axis by accident.
    let mut v: Vec<f64> = (0..d).map(|i| 1.0 + 0.01 * (i as f64 + 1.0).sqrt()).collect();
    let project = |v: &mut Vec<f64>| {
        if let Some(u) = orth {
            let c = dot(v, u);
            v.iter_mut().zip(u).for_each(|(x, y)| *x -= c * y);
        }
        let norm = dot(v, v).sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
    };
    project(&mut v);
    for _ in 0..2000 {
        let mut w: Vec<f64> = m.iter().map(|row| dot(row, &v)).collect();
        project(&mut w);
        let change: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
        v = w;
        if change < 1e-12 {
            break;
        }
    }
    let big = v.iter().cloned().fold(0.0f64, |acc, x| if x.abs() > acc.abs() { x } else { acc });
    if big < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    v
}

fn random_init(n: usize, seed: u64) -> Vec<[f64; 2]> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // N(0, 1e-4) as `Normal::sample` draws it: mean + std * a standard normal draw.
    let mut draw = || 0.0 + 1e-4 * rng.sample::<f64, _>(StandardNormal);
    (0..n).map(|_| [draw(), draw()]).collect()
}

// ---------------------------------------------------------------------------------------------
// Optimisation
// ---------------------------------------------------------------------------------------------

fn optimise(y: &mut [[f64; 2]], p: &SparseP, lr: f64, opts: &TsneOptions) {
    let n = y.len();
    let bar = if opts.progress {
        let bar = ProgressBar::new(opts.iterations as u64);
        if let Ok(style) = ProgressStyle::with_template("t-SNE {bar:30} {pos}/{len} it  {per_sec}  ETA {eta}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut update = vec![[0f64; 2]; n];
    let mut gains = vec![[1f64; 2]; n];
    let mut grad = vec![[0f64; 2]; n];
    for it in 0..opts.iterations {
        let exploring = it < opts.exaggeration_iters;
        if it == opts.exaggeration_iters {
            // scikit-learn runs the two phases as separate descents: fresh momentum and gains.
            update.iter_mut().for_each(|u| *u = [0.0; 2]);
            gains.iter_mut().for_each(|g| *g = [1.0; 2]);
        }
        let exaggeration = if exploring { opts.early_exaggeration } else { 1.0 };
        let momentum = if exploring { 0.5 } else { 0.8 };
        gradient(y, p, exaggeration, opts.theta, &mut grad);
        for i in 0..n {
            for a in 0..2 {
                let g = grad[i][a];
                // Gains grow where the gradient changes sign against the running update.
                gains[i][a] = if update[i][a] * g < 0.0 { gains[i][a] + 0.2 } else { (gains[i][a] * 0.8).max(0.01) };
                update[i][a] = momentum * update[i][a] - lr * gains[i][a] * g;
                y[i][a] += update[i][a];
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
}

/// KL gradient: 4 * (exaggeration * attraction - repulsion / Z), repulsion by Barnes-Hut.
fn gradient(y: &[[f64; 2]], p: &SparseP, exaggeration: f64, theta: f64, grad: &mut [[f64; 2]]) {
    let tree = QuadTree::build(y);
    let mut per_point: Vec<([f64; 2], [f64; 2], f64)> = vec![([0.0; 2], [0.0; 2], 0.0); y.len()];
    per_point.par_iter_mut().enumerate().for_each(|(i, out)| {
        let (rep, z) = tree.repulsion(i, y[i], theta * theta);
        let mut att = [0.0; 2];
        for e in p.row_start[i]..p.row_start[i + 1] {
            let j = p.cols[e] as usize;
            let d = [y[i][0] - y[j][0], y[i][1] - y[j][1]];
            let q = 1.0 / (1.0 + d[0] * d[0] + d[1] * d[1]);
            att[0] += p.vals[e] * q * d[0];
            att[1] += p.vals[e] * q * d[1];
        }
        *out = (att, rep, z);
    });
    // Sequential sum: the normaliser does not depend on how rayon split the work.
    let z: f64 = per_point.iter().map(|t| t.2).sum::<f64>().max(f64::MIN_POSITIVE);
    for (g, (att, rep, _)) in grad.iter_mut().zip(&per_point) {
        for a in 0..2 {
            g[a] = 4.0 * (exaggeration * att[a] - rep[a] / z);
        }
    }
}

/// A quadtree over the map with each cell's point count and centre of mass.
struct QuadTree {
    nodes: Vec<Node>,
    /// Point indices; a leaf owns `perm[first..first + count]`.
    perm: Vec<u32>,
    points: Vec<[f64; 2]>,
}

#[derive(Clone, Copy)]
struct Node {
    com: [f64; 2],
    width: f64,
    count: u32,
    /// Leaf: start in `perm`. Inner node: index of the first child (children are contiguous).
    first: u32,
    /// 0 for a leaf.
    children: u32,
}

/// Deeper cells than this hold near-duplicate points together, as one leaf.
const MAX_DEPTH: usize = 48;

impl QuadTree {
    fn build(y: &[[f64; 2]]) -> QuadTree {
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for p in y {
            for a in 0..2 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        let width = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-12) * (1.0 + 1e-9);
        let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
        let mut tree = QuadTree {
            nodes: Vec::with_capacity(2 * y.len()),
            perm: (0..y.len() as u32).collect(),
            points: y.to_vec(),
        };
        tree.nodes.push(Node { com: [0.0; 2], width, count: 0, first: 0, children: 0 });
        tree.fill(0, 0, y.len(), centre, width, 0);
        tree
    }

    /// Fill node `id` with the points `perm[start..end]` inside the square at `centre`.
    fn fill(&mut self, id: usize, start: usize, end: usize, centre: [f64; 2], width: f64, depth: usize) {
        let mut com = [0.0; 2];
        for &i in &self.perm[start..end] {
            com[0] += self.points[i as usize][0];
            com[1] += self.points[i as usize][1];
        }
        let count = end - start;
        com = [com[0] / count as f64, com[1] / count as f64];
        self.nodes[id] = Node { com, width, count: count as u32, first: start as u32, children: 0 };
        if count == 1 || depth >= MAX_DEPTH {
            return;
        }
        // Split into quadrants: first by x, then each half by y.
        let pts = &self.points;
        let mid = start + partition(&mut self.perm[start..end], |i| pts[i as usize][0] < centre[0]);
        let q1 = start + partition(&mut self.perm[start..mid], |i| pts[i as usize][1] < centre[1]);
        let q3 = mid + partition(&mut self.perm[mid..end], |i| pts[i as usize][1] < centre[1]);
        let h = width / 4.0;
        let quads = [
            (start, q1, [centre[0] - h, centre[1] - h]),
            (q1, mid, [centre[0] - h, centre[1] + h]),
            (mid, q3, [centre[0] + h, centre[1] - h]),
            (q3, end, [centre[0] + h, centre[1] + h]),
        ];
        let first = self.nodes.len();
        let nonempty: Vec<_> = quads.into_iter().filter(|q| q.1 > q.0).collect();
        for _ in &nonempty {
            self.nodes.push(Node { com: [0.0; 2], width: 0.0, count: 0, first: 0, children: 0 });
        }
        self.nodes[id].first = first as u32;
        self.nodes[id].children = nonempty.len() as u32;
        for (c, (s, e, ctr)) in nonempty.into_iter().enumerate() {
            self.fill(first + c, s, e, ctr, width / 2.0, depth + 1);
        }
    }

    /// Unnormalised repulsion on point `i` (sum of q^2 (y_i - y_j)) and its share of Z (sum of q).
    fn repulsion(&self, i: usize, yi: [f64; 2], theta2: f64) -> ([f64; 2], f64) {
        let mut f = [0.0; 2];
        let mut z = 0.0;
        let mut stack = [0u32; 4 * MAX_DEPTH + 4];
        let mut top = 1usize;
        while top > 0 {
            top -= 1;
            let node = &self.nodes[stack[top] as usize];
            if node.children == 0 {
                // Leaf: exact interactions, skipping the point itself.
                for &j in &self.perm[node.first as usize..(node.first + node.count) as usize] {
                    if j as usize == i {
                        continue;
                    }
                    let yj = self.points[j as usize];
                    let d = [yi[0] - yj[0], yi[1] - yj[1]];
                    let q = 1.0 / (1.0 + d[0] * d[0] + d[1] * d[1]);
                    z += q;
                    f[0] += q * q * d[0];
                    f[1] += q * q * d[1];
                }
                continue;
            }
            let d = [yi[0] - node.com[0], yi[1] - node.com[1]];
            let d2 = d[0] * d[0] + d[1] * d[1];
            if node.width * node.width < theta2 * d2 {
                // Far enough: the whole cell acts as one point at its centre of mass.
                let q = 1.0 / (1.0 + d2);
                let c = node.count as f64;
                z += c * q;
                f[0] += c * q * q * d[0];
                f[1] += c * q * q * d[1];
            } else {
                for c in (0..node.children).rev() {
                    stack[top] = node.first + c;
                    top += 1;
                }
            }
        }
        (f, z)
    }
}

/// In-place (unstable) partition; returns how many elements satisfy `pred` (now moved first).
fn partition(v: &mut [u32], pred: impl Fn(u32) -> bool) -> usize {
    let mut k = 0;
    for i in 0..v.len() {
        if pred(v[i]) {
            v.swap(i, k);
            k += 1;
        }
    }
    k
}

// ---------------------------------------------------------------------------------------------
// Quality measure and benchmark
// ---------------------------------------------------------------------------------------------

/// Fraction of points whose `k` nearest neighbours in the map mostly share their label:
/// mean over points of (neighbours with the same label) / k.
pub fn knn_label_agreement(points: &[[f32; 2]], labels: &[usize], k: usize) -> f64 {
    assert_eq!(points.len(), labels.len());
    let n = points.len();
    let k = k.min(n.saturating_sub(1));
    if k == 0 {
        return 1.0;
    }
    let total: usize = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut d: Vec<(f32, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let (dx, dy) = (points[i][0] - points[j][0], points[i][1] - points[j][1]);
                    (dx * dx + dy * dy, j)
                })
                .collect();
            d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d[..k].iter().filter(|e| labels[e.1] == labels[i]).count()
        })
        .sum();
    total as f64 / (n * k) as f64
}

/// Gaussian clusters for tests and the benchmark: `clusters` centres drawn with std `spread`,
/// points with unit std around them; returns (row-major data, labels).
pub fn gaussian_clusters(n: usize, dim: usize, clusters: usize, spread: f64, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut normal = || rng.sample::<f64, _>(StandardNormal);
    let centres: Vec<f64> = (0..clusters * dim).map(|_| spread * normal()).collect();
    let mut data = Vec::with_capacity(n * dim);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % clusters;
        labels.push(c);
        for f in 0..dim {
            data.push((centres[c * dim + f] + normal()) as f32);
        }
    }
    (data, labels)
}
