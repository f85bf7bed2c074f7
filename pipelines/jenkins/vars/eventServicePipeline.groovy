// The whole CI/CD pipeline of an event service, as one declarative pipeline.
// Same stages, same make targets, same order as the GitHub Actions workflows in pipelines/github/workflows/.
// Every stage's work is a make target of the project; this file only orders them and hands out credentials.
// One artifact from build to production: the wheel built and tested here is stashed (and archived), and every
// deploy stage unstashes exactly it. GitOps by a branch for review: a promotion is a commit on promote/<env>/<version>
// that a person merges into main (its pull request), and the deploy waits for that merge and applies what main says.
//
// Usage, a whole Jenkinsfile:  @Library('event-service-pipeline') _
//                              eventServicePipeline(stagingUrl: 'https://staging.example.com')
// Settings (all optional, defaults below): see pipelineSettings.groovy.
def call(Map overrides = [:]) {
    Map settings = pipelineSettings(overrides)

    pipeline {
        // Each stage takes an executor only while it works, so waiting for a review or an approval holds none.
        agent none

        options {
            timestamps()
            buildDiscarder(logRotator(numToKeepStr: '30'))
            // Outlasts both reviews' own timeouts (approvalTimeoutHours each), so those fire first.
            timeout(time: 3, unit: 'DAYS')
        }

        triggers {
            // The GitOps drift check runs on the default branch only.
            cron(env.BRANCH_NAME == settings.defaultBranch ? settings.driftSchedule : '')
        }

        stages {
            stage('Checks') {
                when {
                    beforeAgent true
                    not { triggeredBy 'TimerTrigger' }
                    // The pipeline's own promotion commits carry [skip ci]; building them would loop.
                    not { changelog '.*\\[skip ci\\].*' }
                }
                parallel {
                    stage('Lint') {
                        agent { label settings.agentLabel }
                        steps {
                            makeTarget('install')
                            makeTarget('lint')
                        }
                    }
                    stage('Type check') {
                        agent { label settings.agentLabel }
                        steps {
                            makeTarget('install')
                            makeTarget('type')
                        }
                    }
                    stage('Tests') {
                        agent { label settings.agentLabel }
                        steps {
                            makeTarget('install')
                            makeTarget('test')
                        }
                        post {
                            always {
                                junit testResults: settings.junitReports, allowEmptyResults: false
                                archiveArtifacts artifacts: settings.testReports, allowEmptyArchive: true
                            }
                        }
                    }
                    stage('Template') {
                        agent { label settings.agentLabel }
                        steps {
                            templateCheck()
                        }
                    }
                }
            }

            stage('Build') {
                when {
                    beforeAgent true
                    not { triggeredBy 'TimerTrigger' }
                    not { changelog '.*\\[skip ci\\].*' }
                }
                // One agent for both steps: the image pushed is the image just built.
                agent { label settings.agentLabel }
                stages {
                    stage('Wheel and image') {
                        steps {
                            makeTarget('install')
                            makeTarget('build', [VERSION: serviceVersion()])
                            // Archived for the drift check of later builds (copied back by build number), stashed
                            // for this build's deploy stages, which run on other agents.
                            archiveArtifacts artifacts: 'dist/*.whl', fingerprint: true
                            stash name: 'wheel', includes: 'dist/*.whl'
                            makeTarget('image', [VERSION: serviceVersion()])
                        }
                    }
                    stage('Push image') {
                        when { branch settings.defaultBranch }
                        steps {
                            withRegistryLogin(settings.registryCredentialsId) {
                                makeTarget('image-push', [VERSION: serviceVersion()])
                            }
                        }
                    }
                }
            }

            stage('Promote staging') {
                when {
                    beforeAgent true
                    branch settings.defaultBranch
                    not { triggeredBy 'TimerTrigger' }
                    not { changelog '.*\\[skip ci\\].*' }
                }
                agent { label settings.agentLabel }
                steps {
                    makeTarget('promote', [ENV: 'staging', VERSION: serviceVersion()])
                    gitopsRecordPromotion('staging', settings)
                }
            }

            stage('Review staging') {
                when {
                    beforeInput true
                    branch settings.defaultBranch
                    not { triggeredBy 'TimerTrigger' }
                    not { changelog '.*\\[skip ci\\].*' }
                }
                options {
                    timeout(time: settings.approvalTimeoutHours, unit: 'HOURS')
                }
                input {
                    message "Merge the pull request of promote/staging/${env.SERVICE_VERSION}, then continue"
                    ok 'Merged: deploy staging'
                }
                steps {
                    echo "staging: the promotion of ${env.SERVICE_VERSION} is merged"
                }
            }

            stage('Staging') {
                when {
                    beforeAgent true
                    branch settings.defaultBranch
                    not { triggeredBy 'TimerTrigger' }
                    not { changelog '.*\\[skip ci\\].*' }
                }
                agent { label settings.agentLabel }
                options {
                    lock(resource: "${settings.lockPrefix}-staging")
                }
                stages {
                    stage('Deploy staging') {
                        steps {
                            // What main says now, which must be this build's promotion; then this build's wheel.
                            gitopsCheckoutPromotion('staging', settings)
                            unstash 'wheel'
                            script { env.DEPLOY_STARTED = 'staging' }
                            withDeployCredentials(settings) {
                                makeTarget('deploy', [ENV: 'staging'])
                            }
                        }
                    }
                    stage('Smoke test staging') {
                        steps {
                            withDeployCredentials(settings) {
                                makeTarget('verify', [ENV: 'staging'])
                            }
                        }
                    }
                    stage('Load gate') {
                        steps {
                            // ENV: the gate reads /metrics of every host of staging's inventory (the vault is
                            // part of it), not the balancer's
                            withDeployCredentials(settings) {
                                withCredentials([string(credentialsId: settings.loadtestTokenCredentialsId,
                                                        variable: 'LOADTEST_AUTH_TOKEN')]) {
                                    makeTarget('loadtest', [HOST: settings.stagingUrl, ENV: 'staging'])
                                }
                            }
                        }
                    }
                }
                post {
                    always {
                        archiveArtifacts artifacts: settings.loadtestReports, allowEmptyArchive: true
                    }
                    failure {
                        script {
                            // Only once the deploy has started: before it the hosts are as they were, and a
                            // rollback would take a healthy environment to its previous release.
                            if (env.DEPLOY_STARTED == 'staging') {
                                withDeployCredentials(settings) {
                                    makeTarget('rollback', [ENV: 'staging'])
                                }
                                gitopsRevertPromotion('staging', settings)
                            }
                        }
                        error('staging failed: a started deploy was rolled back and its revert pushed for review')
                    }
                }
            }

            stage('Promote production') {
                when {
                    beforeAgent true
                    branch settings.defaultBranch
                    not { triggeredBy 'TimerTrigger' }
                    not { changelog '.*\\[skip ci\\].*' }
                }
                agent { label settings.agentLabel }
                steps {
                    makeTarget('promote', [ENV: 'production', VERSION: serviceVersion()])
                    gitopsRecordPromotion('production', settings)
                }
            }

            stage('Approve production') {
                when {
                    beforeInput true
                    branch settings.defaultBranch
                    not { triggeredBy 'TimerTrigger' }
                    not { changelog '.*\\[skip ci\\].*' }
                }
                options {
                    timeout(time: settings.approvalTimeoutHours, unit: 'HOURS')
                }
                input {
                    message "Merge the pull request of promote/production/${env.SERVICE_VERSION}, then continue"
                    ok 'Merged: deploy to production'
                    submitter settings.approvers
                    submitterParameter 'APPROVER'
                }
                steps {
                    echo "production: the promotion of ${env.SERVICE_VERSION} is merged (approved by ${APPROVER})"
                }
            }

            stage('Production') {
                when {
                    beforeAgent true
                    branch settings.defaultBranch
                    not { triggeredBy 'TimerTrigger' }
                    not { changelog '.*\\[skip ci\\].*' }
                }
                agent { label settings.agentLabel }
                options {
                    lock(resource: "${settings.lockPrefix}-production")
                }
                stages {
                    stage('Deploy production') {
                        steps {
                            // What main says now, which must be this build's promotion; then this build's wheel.
                            gitopsCheckoutPromotion('production', settings)
                            unstash 'wheel'
                            script { env.DEPLOY_STARTED = 'production' }
                            withDeployCredentials(settings) {
                                makeTarget('deploy', [ENV: 'production'])
                            }
                        }
                    }
                    stage('Smoke test production') {
                        steps {
                            withDeployCredentials(settings) {
                                makeTarget('verify', [ENV: 'production'])
                            }
                        }
                    }
                }
                post {
                    failure {
                        script {
                            // Only once the deploy has started: before it the hosts are as they were, and a
                            // rollback would take a healthy environment to its previous release.
                            if (env.DEPLOY_STARTED == 'production') {
                                withDeployCredentials(settings) {
                                    makeTarget('rollback', [ENV: 'production'])
                                }
                                gitopsRevertPromotion('production', settings)
                            }
                        }
                        error('production failed: a started deploy was rolled back and its revert pushed for review')
                    }
                }
            }

            stage('Drift') {
                when {
                    beforeAgent true
                    triggeredBy 'TimerTrigger'
                }
                parallel {
                    stage('Drift staging') {
                        agent { label settings.agentLabel }
                        steps {
                            // The deploy playbook's --check needs the release's wheel: the one its build archived.
                            releaseWheel('staging')
                            withDeployCredentials(settings) {
                                makeTarget('drift', [ENV: 'staging'])
                            }
                        }
                    }
                    stage('Drift production') {
                        agent { label settings.agentLabel }
                        steps {
                            releaseWheel('production')
                            withDeployCredentials(settings) {
                                makeTarget('drift', [ENV: 'production'])
                            }
                        }
                    }
                }
            }
        }
    }
}
