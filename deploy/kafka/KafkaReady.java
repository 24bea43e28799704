import java.io.FileInputStream;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.Collection;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.errors.AuthenticationException;

/**
 * Readiness probe for the local broker started by kafka.sh.
 *
 * Usage: KafkaReady <host:port> <timeoutSeconds> [brokerPid]
 *
 * With -Dkafka.ready.client.config=<file>, the client properties in that file (e.g.
 * security.protocol, sasl.mechanism, sasl.jaas.config of a SASL listener) are added to the
 * Admin client's.
 *
 * Succeeds (exit 0) once the broker answers a real Admin round trip: DescribeCluster lists at
 * least one live (registered, unfenced) broker and has a controller, and ListTopics
 * (a Metadata request) answers. Exit 1 on timeout or failed authentication, 2 if the given
 * broker pid died meanwhile.
 * The Kafka repo's own kafka-tools (BrokerApiVersionsCommand) is not published for 4.4.0,
 * hence this class.
 */
public final class KafkaReady {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: KafkaReady <host:port> <timeoutSeconds> [brokerPid]");
            System.exit(64);
        }
        String bootstrap = args[0];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
        ProcessHandle broker = args.length > 2
                ? ProcessHandle.of(Long.parseLong(args[2])).orElse(null) : null;
        if (args.length > 2 && broker == null) {
            System.err.println("KafkaReady: broker process " + args[2] + " is not running");
            System.exit(2);
        }
        int colon = bootstrap.lastIndexOf(':');
        String host = bootstrap.substring(0, colon);
        int port = Integer.parseInt(bootstrap.substring(colon + 1));

        String last = "not tried";
        // Phase 1: cheap TCP check, so the Admin client is not created against a closed port.
        while (true) {
            checkAlive(broker);
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(host, port), 1000);
                break;
            } catch (Exception e) {
                last = "connect " + bootstrap + ": " + e.getMessage();
            }
            if (System.nanoTime() > deadline) fail(last);
            Thread.sleep(200);
        }
        // Phase 2: real Kafka requests.
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "100");
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "agentledger-kafka-ready");
        String clientConfig = System.getProperty("kafka.ready.client.config", "");
        if (!clientConfig.isEmpty()) {
            try (InputStream in = new FileInputStream(clientConfig)) {
                p.load(in);
            }
        }
        try (Admin admin = Admin.create(p)) {
            while (true) {
                checkAlive(broker);
                try {
                    DescribeClusterResult dc = admin.describeCluster();
                    Collection<Node> nodes = dc.nodes().get(5, TimeUnit.SECONDS);
                    Node controller = dc.controller().get(5, TimeUnit.SECONDS);
                    Set<String> topics = admin.listTopics(new ListTopicsOptions().listInternal(true))
                            .names().get(5, TimeUnit.SECONDS);
                    if (!nodes.isEmpty() && controller != null && !controller.isEmpty()) {
                        System.out.println("ready: brokers=" + nodes.size() + " controller="
                                + controller.id() + " topics=" + topics.size());
                        return;
                    }
                    last = "cluster not ready yet (brokers=" + nodes.size() + ")";
                } catch (Exception e) {
                    last = e.toString();
                    // Wrong credentials do not get better by waiting.
                    if (e.getCause() instanceof AuthenticationException) {
                        System.err.println("KafkaReady: authentication failed: " + last);
                        System.exit(1);
                    }
                }
                if (System.nanoTime() > deadline) fail(last);
                Thread.sleep(250);
            }
        }
    }

    private static void checkAlive(ProcessHandle broker) {
        if (broker != null && !broker.isAlive()) {
            System.err.println("KafkaReady: broker process " + broker.pid() + " exited");
            System.exit(2);
        }
    }

    private static void fail(String last) {
        System.err.println("KafkaReady: timed out; last error: " + last);
        System.exit(1);
    }
}
