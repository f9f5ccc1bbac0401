// Calls an mTLS endpoint once with a client key and certificate from a PKCS#12 keystore,
// trusting the server through a PKCS#12 truststore: what a Java consumer of kyma-certd's
// `pkcs12` output does. Prints the HTTP status and the server's subject; exits 0 on 200.
import java.io.FileInputStream;
import java.net.URL;
import java.security.KeyStore;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class MtlsCall {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        char[] keystorePassword = args[2].toCharArray();
        char[] truststorePassword = args[4].toCharArray();

        KeyStore keystore = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(args[1])) {
            keystore.load(in, keystorePassword);
        }
        KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keys.init(keystore, keystorePassword);

        KeyStore truststore = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(args[3])) {
            truststore.load(in, truststorePassword);
        }
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(truststore);

        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(keys.getKeyManagers(), trust.getTrustManagers(), null);
        HttpsURLConnection connection = (HttpsURLConnection) new URL(url).openConnection();
        connection.setSSLSocketFactory(tls.getSocketFactory());
        connection.setConnectTimeout(5000);
        connection.setReadTimeout(5000);
        int status = connection.getResponseCode();
        System.out.println("status " + status);
        System.exit(status == 200 ? 0 : 1);
    }
}
