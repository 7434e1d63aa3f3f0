// hnswlib compiled for this machine (-O3 -march=native), as a peer for the
// ANN benchmark: Debian's python3-hnswlib is built for baseline x86-64 and
// so uses SSE distance kernels only, while reel may use AVX2/AVX-512; this
// peer is hnswlib at its best on the same CPU. Same header library
// (libhnswlib-dev, the version python3-hnswlib is built from), same calls
// as the python binding: addPoint from N threads over the rows, then
// searchKnn one query at a time on one thread.
//
// Prints one JSON object on stdout with the same fields as run.py's python
// workers; progress on stderr. Built on demand by run.py:
//   g++ -O3 -march=native -std=c++17 -pthread hnswlib_native.cpp
//   hnswlib_native BASE QUERY GT l2|ip M EFC THREADS K RUNS MIN_PASS_S EFS \
//       STOP_RECALL
// where EFS is a comma-separated list, and the sweep stops once recall
// reaches STOP_RECALL (0: never).
#include <hnswlib/hnswlib.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

double now()
{
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double cpu_now()
{
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Current and peak RSS in KiB, from /proc/self/status.
void rss(long *cur, long *peak)
{
    std::ifstream f("/proc/self/status");
    std::string line;
    *cur = *peak = 0;
    while (std::getline(f, line)) {
        if (line.rfind("VmRSS:", 0) == 0)
            *cur = std::atol(line.c_str() + 6);
        else if (line.rfind("VmHWM:", 0) == 0)
            *peak = std::atol(line.c_str() + 6);
    }
}

// Reads .fvecs or .ivecs (per row an int32 dim, then dim 4-byte values).
template <typename T>
std::vector<T> read_vecs(const char *path, size_t *n, size_t *d)
{
    FILE *f = std::fopen(path, "rb");
    if (!f)
        throw std::runtime_error(std::string("cannot open ") + path);
    int32_t dim = 0;
    if (std::fread(&dim, 4, 1, f) != 1 || dim <= 0)
        throw std::runtime_error(std::string("bad header in ") + path);
    std::fseek(f, 0, SEEK_END);
    long size = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    size_t rec = 4 + 4 * (size_t)dim;
    if (size % rec)
        throw std::runtime_error(std::string("bad size of ") + path);
    *n = size / rec;
    *d = dim;
    std::vector<T> out(*n * *d);
    std::vector<char> buf(rec);
    for (size_t i = 0; i < *n; i++) {
        if (std::fread(buf.data(), rec, 1, f) != 1)
            throw std::runtime_error(std::string("short read of ") + path);
        std::memcpy(&out[i * *d], buf.data() + 4, rec - 4);
    }
    std::fclose(f);
    return out;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 13) {
        std::fprintf(stderr, "usage: %s BASE QUERY GT l2|ip M EFC THREADS K "
                             "RUNS MIN_PASS_S EFS STOP_RECALL\n", argv[0]);
        return 2;
    }
    const char *metric = argv[4];
    size_t m = std::atol(argv[5]), efc = std::atol(argv[6]);
    int threads = std::atoi(argv[7]);
    size_t k = std::atol(argv[8]);
    int runs = std::atoi(argv[9]);
    double min_pass = std::atof(argv[10]);
    double stop_recall = std::atof(argv[12]);
    std::vector<size_t> efs;
    {
        std::stringstream ss(argv[11]);
        std::string x;
        while (std::getline(ss, x, ','))
            if (!x.empty())
                efs.push_back(std::atol(x.c_str()));
    }

    long rss_base, rss_data, rss_built, peak, unused;
    rss(&rss_base, &unused);
    double t0 = now();
    size_t n, d, nq, dq, ngt, kgt;
    std::vector<float> base = read_vecs<float>(argv[1], &n, &d);
    double load_s = now() - t0;
    rss(&rss_data, &unused);

    std::unique_ptr<hnswlib::SpaceInterface<float>> space;
    if (std::strcmp(metric, "l2") == 0)
        space.reset(new hnswlib::L2Space(d));
    else
        space.reset(new hnswlib::InnerProductSpace(d));
    t0 = now();
    auto *ix =
        new hnswlib::HierarchicalNSW<float>(space.get(), n, m, efc, 100);
    // As the python binding's add_items: the first row alone, then the
    // rows handed out to the threads one at a time.
    ix->addPoint(&base[0], 0);
    std::atomic<size_t> next(1);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++)
        pool.emplace_back([&] {
            for (size_t i; (i = next.fetch_add(1)) < n;)
                ix->addPoint(&base[i * d], i);
        });
    for (auto &t : pool)
        t.join();
    double build_s = now() - t0;
    rss(&rss_built, &peak);
    std::vector<float>().swap(base);

    std::vector<float> query = read_vecs<float>(argv[2], &nq, &dq);
    std::vector<int32_t> gt = read_vecs<int32_t>(argv[3], &ngt, &kgt);
    if (dq != d || ngt < nq || kgt < k) {
        std::fprintf(stderr, "hnswlib_native: query/gt shape mismatch\n");
        return 1;
    }
    std::vector<size_t> ids(nq * k);
    auto search = [&](size_t ef) {
        ix->setEf(ef);
        for (size_t i = 0; i < nq; i++) {
            auto r = ix->searchKnn(&query[i * d], k);
            std::fill(&ids[i * k], &ids[i * k] + k, (size_t)-1);
            for (size_t j = r.size(); j-- > 0; r.pop())
                ids[i * k + j] = r.top().second;
        }
    };
    search(64); // warm-up pass

    std::string sweep;
    for (size_t ef : efs) {
        double best = 0, cpu = 0;
        for (int run = 0; run < runs; run++) {
            size_t done = 0;
            double s = now(), c = cpu_now(), dt;
            do {
                search(ef);
                done += nq;
                dt = now() - s;
            } while (dt < min_pass);
            if (done / dt > best) {
                best = done / dt;
                cpu = done / std::max(1e-9, cpu_now() - c);
            }
        }
        size_t hit = 0;
        for (size_t i = 0; i < nq; i++)
            for (size_t j = 0; j < k; j++)
                for (size_t g = 0; g < k; g++)
                    hit += ids[i * k + j] == (size_t)gt[i * kgt + g];
        double recall = (double)hit / (nq * k);
        std::fprintf(stderr, "ann: hnswlib-native ef=%zu recall@%zu=%.4f "
                     "qps=%.0f\n", ef, k, recall, best);
        char buf[160];
        std::snprintf(buf, sizeof buf,
                      "%s{\"ef\": %zu, \"recall\": %.6f, \"qps\": %.3f, "
                      "\"qps_cpu\": %.3f}",
                      sweep.empty() ? "" : ", ", ef, recall, best, cpu);
        sweep += buf;
        if (stop_recall > 0 && recall >= stop_recall)
            break;
    }
    std::printf("{\"version\": \"0.6.2 header, g++ -O3 -march=native\", "
                "\"build_s\": %.3f, \"load_s\": %.3f, "
                "\"rss_baseline_mib\": %.1f, \"rss_data_mib\": %.1f, "
                "\"rss_built_mib\": %.1f, \"peak_rss_mib\": %.1f, "
                "\"index_mib\": %.1f, \"peak_over_baseline_mib\": %.1f, "
                "\"sweep\": [%s]}\n",
                build_s, load_s, rss_base / 1024.0, rss_data / 1024.0,
                rss_built / 1024.0, peak / 1024.0,
                (rss_built - rss_data) / 1024.0, (peak - rss_base) / 1024.0,
                sweep.c_str());
    delete ix;
    return 0;
}
