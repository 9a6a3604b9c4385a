package io.sigmahunt.testsupport;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.transport.TransportAddress;
import org.elasticsearch.env.Environment;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.transport.Netty4Plugin;

/**
 * A real single-node Elasticsearch 7.17 (same server code as the distribution, minus
 * the bootstrap/CLI layer and the bundled modules other than transport-netty4) for sigmahunt's integration tests.
 *
 * <pre>
 * usage: EmbeddedElasticsearch HOME_DIR [--ignore-stdin] [--delete-on-exit DIR] [-Ekey=value ...]
 * </pre>
 *
 * HOME_DIR is created if missing and used as path.home (data, logs, config below
 * it). Once the node is up, exactly one line
 * {@code SIGMAHUNT_ELASTICSEARCH_URL=http://127.0.0.1:PORT} is printed to stdout.
 * The node then runs until stdin reaches EOF (unless --ignore-stdin) or the JVM
 * gets SIGTERM/SIGINT; both close the node cleanly. Logging goes to stderr.
 * --delete-on-exit DIR removes DIR (recursively) after the node has closed, so a
 * test harness that dies without cleaning up leaves no data directory behind.
 */
public final class EmbeddedElasticsearch {

    /** Marker printed to stdout once HTTP is reachable. */
    public static final String URL_PREFIX = "SIGMAHUNT_ELASTICSEARCH_URL=";

    /** Node's usable constructor (with classpath plugins) is protected. */
    static final class ClasspathPluginNode extends Node {
        ClasspathPluginNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    private EmbeddedElasticsearch() {}

    static List<Class<? extends Plugin>> plugins() {
        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        plugins.add(Netty4Plugin.class);          // http + transport
        // analysis-common is not published for 7.17: core analysis only
        return plugins;
    }

    static Settings settings(Path home, List<String> overrides) {
        Settings.Builder b = Settings.builder()
            .put("cluster.name", "sigmahunt-test")
            .put("node.name", "sigmahunt-node-0")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", "0")            // ephemeral; the real port is printed
            .put("transport.port", "0")
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("bootstrap.memory_lock", false)
            // small heaps: rely on the configured limits, not on real heap usage
            .put("indices.breaker.total.use_real_memory", false)
            .put("action.auto_create_index", true)
            .put("node.attr.sigmahunt", "test");
        for (String kv : overrides) {
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("bad -E setting (want key=value): " + kv);
            }
            b.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return b.build();
    }

    public static void main(String[] args) throws Exception {
        Path home = null;
        boolean ignoreStdin = false;
        Path deleteOnExit = null;
        List<String> overrides = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--ignore-stdin")) {
                ignoreStdin = true;
            } else if (a.equals("--delete-on-exit") && i + 1 < args.length) {
                deleteOnExit = Paths.get(args[++i]).toAbsolutePath();
            } else if (a.startsWith("-E")) {
                overrides.add(a.substring(2));
            } else if (home == null) {
                home = Paths.get(a).toAbsolutePath();
            } else {
                System.err.println("usage: EmbeddedElasticsearch HOME_DIR [--ignore-stdin] [--delete-on-exit DIR] [-Ekey=value ...]");
                System.exit(2);
            }
        }
        if (home == null) {
            home = Files.createTempDirectory("sigmahunt-elasticsearch-");
        }
        for (String d : new String[] {"config", "data", "logs", "plugins", "modules"}) {
            Files.createDirectories(home.resolve(d));
        }

        long t0 = System.nanoTime();
        final Node node;
        try {
            Environment env = InternalSettingsPreparer.prepareEnvironment(
                settings(home, overrides), java.util.Collections.emptyMap(), null, () -> "sigmahunt-node-0");
            node = new ClasspathPluginNode(env, plugins());
            node.start();
        } catch (Throwable t) {
            System.err.println("sigmahunt: Elasticsearch failed to start:");
            t.printStackTrace();
            System.err.flush();
            if (deleteOnExit != null) {
                deleteRecursively(deleteOnExit);
            }
            Runtime.getRuntime().halt(1);
            return;
        }

        AtomicBoolean closed = new AtomicBoolean();
        final Path toDelete = deleteOnExit;
        Runnable shutdown = () -> {
            if (closed.compareAndSet(false, true)) {
                try {
                    node.close();
                    if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                        System.err.println("sigmahunt: node did not close within 30s");
                    }
                } catch (IOException | InterruptedException | RuntimeException e) {
                    System.err.println("sigmahunt: error while closing node: " + e);
                }
                if (toDelete != null) {
                    deleteRecursively(toDelete);
                }
            }
        };
        Runtime.getRuntime().addShutdownHook(new Thread(shutdown, "sigmahunt-elasticsearch-shutdown"));

        HttpServerTransport http = node.injector().getInstance(HttpServerTransport.class);
        TransportAddress publish = http.boundAddress().publishAddress();
        InetSocketAddress sa = publish.address();
        String host = sa.getAddress().getHostAddress();
        if (host.contains(":")) {
            host = "[" + host + "]";
        }
        System.err.printf("sigmahunt: Elasticsearch %s started in %d ms (home %s)%n",
            org.elasticsearch.Version.CURRENT, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0), home);
        System.out.println(URL_PREFIX + "http://" + host + ":" + sa.getPort());
        System.out.flush();

        if (ignoreStdin) {
            Thread.currentThread().join(); // until SIGTERM / SIGINT
        }
        InputStream in = System.in;
        byte[] buf = new byte[256];
        try {
            while (in.read(buf) != -1) {
                // ignore input; EOF is the stop signal
            }
        } catch (IOException ignored) {
            // treat a broken stdin like EOF
        }
        System.exit(0); // runs the shutdown hook, which closes the node
    }

    static void deleteRecursively(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (java.util.stream.Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    // best effort
                }
            });
        } catch (IOException | RuntimeException e) {
            System.err.println("sigmahunt: could not delete " + dir + ": " + e);
        }
    }
}
