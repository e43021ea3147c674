pragma circom 2.1.0;

// LedgerLearn robust-filter circuit: proves that a round's inlier mask follows the declared
// rule from the trainers' committed sketches. The rule, the public-hash fold and the
// encodings are specified once in Python (zk/filter_rule.py, zk/public_hash.py,
// zk/sketch.py); this circuit constrains exactly that, and the tests check it both ways.
//
// Parameters: N trainer slots, D sketch dimensions, B bits per sketch value.
// Sketch values enter in offset form u = v + 2^(B-1), u in [0, 2^B) for an honest sketch.
//
// Rule (all over ACTIVE slots, k = #active >= 1):
//   median[j]  = lower median of u[i][j]                (the reference point)
//   dist[i]    = sum_j |u[i][j] - median[j]|            (L1 distance)
//   medianDist = lower median of dist[i]
//   mask[i]    = active[i] AND den * dist[i] <= num * medianDist
//   sumW[j]    = sum_i mask[i] * (u[i][j] + 2^B)         (sum of inlier sketches, offset)
// Public input (zk/public_hash.py): publicHash = P2(P2(acc, flags), outputs), where acc is the
// verifier contract's Poseidon chain over the commitments in arrival order, flags packs the
// active and mask bits and the rule, and outputs = Poseidon(medianDist, packed sumW).
// A lower median m of k values is pinned by counting: #{< m} <= floor((k-1)/2) and
// #{> m} <= floor(k/2); exactly one value satisfies both, so the prover cannot choose it.
//
// Range checks: every sketch value (all N slots) is decomposed with Num2Bits(B), so the
// circuit accepts exactly the values the Python reference accepts (u in [0, 2^B)); then
// w = u + 2^B lies in [2^B, 2^(B+1)) and packing w in lanes of B+2 bits is injective, so the
// commitment binds every value, and LessThan(B) on two B-bit values is an exact comparison.
// The median needs no range check of its own: the counting constraints force at least one
// active value to equal it (#eq >= k - floor((k-1)/2) - floor(k/2) = 1).
//
// chainSeed is private and unconstrained, and that is harmless (docs/zk.md, "chainSeed"):
// acc[N] enters the public hash and must equal the contract's chain, which starts from
// (projectId, round); by Poseidon's collision resistance the proof's used steps are then a
// suffix of the contract's chain, and every active slot is picked on one of them with its
// own commitment. A seed other than the contract's can only skip a prefix of steps that no
// active slot is picked on, i.e. leave out commitments that are not in the rule anyway.
//
// Distinct commitments: two active slots may not carry the same commitment (a copied
// commitment opens with the copied sketch and salt, so a copycat would be a second inlier
// for free). The aggregator rejects the copy (zk/onchain.py, duplicate_commitments).

include "poseidon.circom";
include "comparators.circom";
include "bitify.circom";

// Smallest n with 2^n > x.
function bitlen(x) {
    var n = 0;
    while ((1 << n) <= x) {
        n++;
    }
    return n;
}

// Lower median check by counting (see the header): counts are over active slots.
template LowerMedianCounts(N, CB) {
    signal input cntLess;
    signal input cntEq;
    signal input k;
    signal input half;
    signal input parity;

    // #less <= floor((k-1)/2) = half + parity - 1 (k >= 1 is enforced by the caller)
    component le1 = LessEqThan(CB);
    le1.in[0] <== cntLess;
    le1.in[1] <== half + parity - 1;
    le1.out === 1;
    // #greater = k - #less - #equal <= floor(k/2) = half
    component le2 = LessEqThan(CB);
    le2.in[0] <== k - cntLess - cntEq;
    le2.in[1] <== half;
    le2.out === 1;
}

template SketchFilter(N, D, B) {
    var LANE = B + 2;
    var PER = 252 \ LANE;
    var NPACK = (D + PER - 1) \ PER;
    var DB = B + bitlen(D);
    var RB = 16;
    var CB = bitlen(N) + 1;
    var SLANE = B + 2 + bitlen(N);
    var SPER = 252 \ SLANE;
    var NSPACK = (D + SPER - 1) \ SPER;
    assert(NPACK + 1 <= 16);
    assert(NSPACK <= 16);
    assert(NSPACK + 1 <= 16);
    assert(2 * N + 2 * RB <= 252);
    assert(DB + RB <= 252);

    signal input publicHash;

    signal input chainSeed;
    signal input element[N];
    signal input used[N];
    signal input pick[N][N];
    signal input sketch[N][D];
    signal input salt[N];
    signal input commitment[N];
    signal input active[N];
    signal input median[D];
    signal input medianDist;
    signal input ruleNum;
    signal input ruleDen;
    signal input half;
    signal input parity;

    // ---- active slots: bits, k = 2 * half + parity, k >= 1
    var kSum = 0;
    for (var i = 0; i < N; i++) {
        active[i] * (active[i] - 1) === 0;
        kSum += active[i];
    }
    signal k <== kSum;
    parity * (parity - 1) === 0;
    component halfBits = Num2Bits(CB);
    halfBits.in <== half;
    k === 2 * half + parity;
    component kZero = IsZero();
    kZero.in <== k;
    kZero.out === 0;

    // ---- commitments: Poseidon(salt, packed lanes of u + 2^B), checked on active slots
    component commitHash[N];
    for (var i = 0; i < N; i++) {
        commitHash[i] = Poseidon(NPACK + 1);
        commitHash[i].inputs[0] <== salt[i];
        for (var p = 0; p < NPACK; p++) {
            var lc = 0;
            for (var l = 0; l < PER; l++) {
                if (p * PER + l < D) {
                    lc += (sketch[i][p * PER + l] + (1 << B)) * (1 << (LANE * l));
                }
            }
            commitHash[i].inputs[p + 1] <== lc;
        }
        active[i] * (commitment[i] - commitHash[i].out) === 0;
    }
    // ---- no two active slots carry the same commitment: (c_i - c_j) * inv = a_i * a_j
    signal bothActive[N][N];
    signal diffInv[N][N];
    for (var i = 0; i < N; i++) {
        for (var j = i + 1; j < N; j++) {
            bothActive[i][j] <== active[i] * active[j];
            diffInv[i][j] <-- bothActive[i][j] * (commitment[i] - commitment[j]) != 0
                ? 1 / (commitment[i] - commitment[j]) : 0;
            (commitment[i] - commitment[j]) * diffInv[i][j] === bothActive[i][j];
        }
    }

    // ---- coordinate-wise lower median of the active sketches, and L1 distances to it
    // every value in [0, 2^B), on every slot (the prover fills empty slots with 0)
    component valueBits[N][D];
    for (var i = 0; i < N; i++) {
        for (var j = 0; j < D; j++) {
            valueBits[i][j] = Num2Bits(B);
            valueBits[i][j].in <== sketch[i][j];
        }
    }
    component lt[N][D];
    component eq[N][D];
    signal aLt[N][D];
    signal aEq[N][D];
    signal absDiff[N][D];
    signal dist[N];
    for (var i = 0; i < N; i++) {
        var dsum = 0;
        for (var j = 0; j < D; j++) {
            lt[i][j] = LessThan(B);
            lt[i][j].in[0] <== sketch[i][j];
            lt[i][j].in[1] <== median[j];
            eq[i][j] = IsEqual();
            eq[i][j].in[0] <== sketch[i][j];
            eq[i][j].in[1] <== median[j];
            aLt[i][j] <== active[i] * lt[i][j].out;
            aEq[i][j] <== active[i] * eq[i][j].out;
            // gt - lt = 1 - 2 lt - eq
            absDiff[i][j] <== (sketch[i][j] - median[j]) * (1 - 2 * lt[i][j].out - eq[i][j].out);
            dsum += absDiff[i][j];
        }
        dist[i] <== dsum;
    }
    component coordMedian[D];
    for (var j = 0; j < D; j++) {
        var nLess = 0;
        var nEq = 0;
        for (var i = 0; i < N; i++) {
            nLess += aLt[i][j];
            nEq += aEq[i][j];
        }
        coordMedian[j] = LowerMedianCounts(N, CB);
        coordMedian[j].cntLess <== nLess;
        coordMedian[j].cntEq <== nEq;
        coordMedian[j].k <== k;
        coordMedian[j].half <== half;
        coordMedian[j].parity <== parity;
    }

    // ---- lower median of the active distances
    component mdBits = Num2Bits(DB);
    mdBits.in <== medianDist;
    component dLt[N];
    component dEq[N];
    signal adLt[N];
    signal adEq[N];
    var dLess = 0;
    var dEqual = 0;
    for (var i = 0; i < N; i++) {
        dLt[i] = LessThan(DB);
        dLt[i].in[0] <== dist[i];
        dLt[i].in[1] <== medianDist;
        dEq[i] = IsEqual();
        dEq[i].in[0] <== dist[i];
        dEq[i].in[1] <== medianDist;
        adLt[i] <== active[i] * dLt[i].out;
        adEq[i] <== active[i] * dEq[i].out;
        dLess += adLt[i];
        dEqual += adEq[i];
    }
    component distMedian = LowerMedianCounts(N, CB);
    distMedian.cntLess <== dLess;
    distMedian.cntEq <== dEqual;
    distMedian.k <== k;
    distMedian.half <== half;
    distMedian.parity <== parity;

    // ---- the mask: active AND den * dist <= num * medianDist
    component numBits = Num2Bits(RB);
    numBits.in <== ruleNum;
    component denBits = Num2Bits(RB);
    denBits.in <== ruleDen;
    signal threshold <== ruleNum * medianDist;
    signal scaledDist[N];
    component within[N];
    signal mask[N];
    for (var i = 0; i < N; i++) {
        scaledDist[i] <== ruleDen * dist[i];
        within[i] = LessEqThan(DB + RB);
        within[i].in[0] <== scaledDist[i];
        within[i].in[1] <== threshold;
        mask[i] <== active[i] * within[i].out;
    }

    // ---- sums of the inlier sketches, offset: sumW[j] = sum_i mask[i] * (u[i][j] + 2^B)
    signal masked[N][D];
    var nMask = 0;
    for (var i = 0; i < N; i++) {
        nMask += mask[i];
    }
    signal sumW[D];
    for (var j = 0; j < D; j++) {
        var s = 0;
        for (var i = 0; i < N; i++) {
            masked[i][j] <== mask[i] * sketch[i][j];
            s += masked[i][j];
        }
        sumW[j] <== s + nMask * (1 << B);
    }
    component outputsHash = Poseidon(NSPACK + 1);
    outputsHash.inputs[0] <== medianDist;
    for (var p = 0; p < NSPACK; p++) {
        var lc = 0;
        for (var l = 0; l < SPER; l++) {
            if (p * SPER + l < D) {
                lc += sumW[p * SPER + l] * (1 << (SLANE * l));
            }
        }
        outputsHash.inputs[p + 1] <== lc;
    }

    // ---- the commitments chain, in the order the trainers committed (zk/public_hash.py).
    // The verifier contract folds acc = P2(acc, commitment + slot) as each trainer commits,
    // from chainSeed (project and round); the arrival order is private: pick[t][i] = 1 says
    // step t carried slot i. Each active slot is picked exactly once, on a used step, and
    // the step's element must be its commitment plus its slot index, so the aggregator can
    // neither swap sketches between trainers nor leave a committed one out.
    signal acc[N + 1];
    acc[0] <== chainSeed;
    component chain[N];
    signal stepped[N];
    signal picked[N];
    for (var t = 0; t < N; t++) {
        used[t] * (used[t] - 1) === 0;
        if (t > 0) {
            used[t] * (1 - used[t - 1]) === 0;
        }
        var nPicked = 0;
        for (var i = 0; i < N; i++) {
            pick[t][i] * (pick[t][i] - 1) === 0;
            pick[t][i] * (commitment[i] + i - element[t]) === 0;
            nPicked += pick[t][i];
        }
        picked[t] <== nPicked;
        picked[t] * (1 - used[t]) === 0;
        picked[t] * (picked[t] - 1) === 0;
        chain[t] = Poseidon(2);
        chain[t].inputs[0] <== acc[t];
        chain[t].inputs[1] <== element[t];
        stepped[t] <== used[t] * (chain[t].out - acc[t]);
        acc[t + 1] <== acc[t] + stepped[t];
    }
    for (var i = 0; i < N; i++) {
        var times = 0;
        for (var t = 0; t < N; t++) {
            times += pick[t][i];
        }
        times === active[i];
    }

    // ---- the public fold: P2(P2(acc, flags), outputs); the contract computes the same
    var flags = 0;
    for (var i = 0; i < N; i++) {
        flags += active[i] * (1 << i) + mask[i] * (1 << (N + i));
    }
    flags += ruleNum * (1 << (2 * N)) + ruleDen * (1 << (2 * N + RB));
    component foldFlags = Poseidon(2);
    foldFlags.inputs[0] <== acc[N];
    foldFlags.inputs[1] <== flags;
    component foldOutputs = Poseidon(2);
    foldOutputs.inputs[0] <== foldFlags.out;
    foldOutputs.inputs[1] <== outputsHash.out;
    publicHash === foldOutputs.out;
}
