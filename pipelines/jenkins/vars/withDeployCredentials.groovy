// Gives Ansible its SSH key and vault password for the body, through the variables Ansible itself reads.
// The files exist only while the body runs; Jenkins masks their content in the log.
void call(Map settings, Closure body) {
    withCredentials([
        sshUserPrivateKey(credentialsId: settings.sshCredentialsId, keyFileVariable: 'ANSIBLE_PRIVATE_KEY_FILE'),
        file(credentialsId: settings.vaultCredentialsId, variable: 'ANSIBLE_VAULT_PASSWORD_FILE'),
    ]) {
        body()
    }
}
