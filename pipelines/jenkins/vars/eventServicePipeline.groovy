// The whole CI/CD pipeline of an event service, as one declarative pipeline.
// Same stages, same make targets, same order as the GitHub Actions workflows in pipelines/github/workflows/.
// Every stage's work is a make target of the project; this file only orders them and hands out credentials.
//
// Usage, a whole Jenkinsfile:  @Library('event-service-pipeline') _
//                              eventServicePipeline(stagingUrl: 'https://staging.example.com')
// Settings (all optional, defaults below): see pipelineSettings.groovy.
def call(Map overrides = [:]) {
    Map settings = pipelineSettings(overrides)

    pipeline {
        // Each stage takes an executor only while it works, so waiting for the production approval holds none.
        agent none

        options {
            timestamps()
            buildDiscarder(logRotator(numToKeepStr: '30'))
            // Outlasts the production approval's own timeout (approvalTimeoutHours), so that one fires first.
            timeout(time: 2, unit: 'DAYS')
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
                            makeTarget('build')
                            archiveArtifacts artifacts: 'dist/*', fingerprint: true
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
                            makeTarget('install')
                            makeTarget('promote', [ENV: 'staging', VERSION: serviceVersion()])
                            gitopsRecordPromotion('staging', settings)
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
                            makeTarget('loadtest', [HOST: settings.stagingUrl])
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
                            }
                        }
                        gitopsRevertPromotion('staging', settings)
                        error('staging failed: a started deploy was rolled back, a pushed promotion reverted')
                    }
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
                    message 'Deploy this version to production?'
                    ok 'Deploy to production'
                    submitter settings.approvers
                    submitterParameter 'APPROVER'
                }
                steps {
                    echo "Production deploy approved by ${APPROVER}"
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
                            makeTarget('install')
                            makeTarget('promote', [ENV: 'production', VERSION: serviceVersion()])
                            gitopsRecordPromotion('production', settings)
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
                            }
                        }
                        gitopsRevertPromotion('production', settings)
                        error('production failed: a started deploy was rolled back, a pushed promotion reverted')
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
                            makeTarget('install')
                            withDeployCredentials(settings) {
                                makeTarget('drift', [ENV: 'staging'])
                            }
                        }
                    }
                    stage('Drift production') {
                        agent { label settings.agentLabel }
                        steps {
                            makeTarget('install')
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
